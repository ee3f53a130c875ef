// A small Kubernetes API server double: the list/watch wire protocol for the kinds Weft reads, and test
// controls to change objects, interrupt watches, restart and compact history. The only double of the
// API server in the tests; the real client (@kubernetes/client-node) talks to it unchanged.
//
// What it speaks:
// - GET list: `/api/v1/pods`, `/api/v1/namespaces/NS/pods`, `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL`
//   -> `{ kind: "<Kind>List", apiVersion, metadata: { resourceVersion }, items }` (items without kind and
//   apiVersion, as the real server sends them).
// - GET `?watch=1&resourceVersion=N`: chunked JSON lines `{ type, object }`, replaying the kept history
//   after N, then live. Without N (or N = 0) every current object is sent ADDED first.
//   `allowWatchBookmarks=true` -> BOOKMARK events on `bookmark()`; `timeoutSeconds` ends the watch.
//   N older than the kept history -> one ERROR event with a Status (410, reason Expired), then the end.
//
// Invariants: one global resourceVersion, bumped by every change; history keeps the last `historyLimit`
// events (older watches get 410); a watcher whose unsent output exceeds MAX_WATCH_BUFFER_BYTES is cut
// off, as a real server drops slow watchers, so no buffer grows without bound.
import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A slow test client may fall this far behind before its watch is closed. */
const MAX_WATCH_BUFFER_BYTES = 4 * 1024 * 1024;
/** Enough for any test's changes; tests of compaction pass a small one or call `compact()`. */
const DEFAULT_HISTORY_LIMIT = 1000;

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    [key: string]: unknown;
  };
  [field: string]: unknown;
}

interface ResourceType {
  readonly kind: string;
  readonly apiVersion: string;
  readonly plural: string;
  readonly namespaced: boolean;
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  { kind: 'Namespace', apiVersion: 'v1', plural: 'namespaces', namespaced: false },
  { kind: 'Pod', apiVersion: 'v1', plural: 'pods', namespaced: true },
  { kind: 'Service', apiVersion: 'v1', plural: 'services', namespaced: true },
  { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices', namespaced: true },
  { kind: 'Gateway', apiVersion: 'gateway.networking.k8s.io/v1', plural: 'gateways', namespaced: true },
  { kind: 'HTTPRoute', apiVersion: 'gateway.networking.k8s.io/v1', plural: 'httproutes', namespaced: true },
  {
    kind: 'AuthorizationPolicy',
    apiVersion: 'security.istio.io/v1',
    plural: 'authorizationpolicies',
    namespaced: true,
  },
  {
    kind: 'PeerAuthentication',
    apiVersion: 'security.istio.io/v1',
    plural: 'peerauthentications',
    namespaced: true,
  },
];

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  readonly resourceVersion: number;
  readonly type: EventType;
  readonly resource: ResourceType;
  readonly object: KubeObject;
}

interface Watcher {
  readonly resource: ResourceType;
  readonly namespace: string | undefined;
  readonly bookmarks: boolean;
  readonly res: ServerResponse;
}

export interface KubeApiServerOptions {
  /** How many change events are kept for watches that resume from an older resourceVersion. */
  readonly historyLimit?: number;
}

interface KubeApiServerEvents {
  /** A list request was served: `kind` is the resource's kind. */
  list: [kind: string];
  /** A watch was opened and its replay sent. */
  watch: [kind: string];
}

export class KubeApiServer extends EventEmitter<KubeApiServerEvents> {
  readonly #historyLimit: number;
  readonly #objects = new Map<string, KubeObject>();
  readonly #history: HistoryEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  #resourceVersion = 1;
  /** Watches from a resourceVersion below this get 410: the events after it are no longer kept. */
  #oldestResumable = 1;
  #server: Server | undefined;
  #port = 0;

  constructor(options: KubeApiServerOptions = {}) {
    super();
    this.#historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
  }

  /** Listens on 127.0.0.1 (port 0 the first time, the same port afterwards). */
  async listen(): Promise<void> {
    if (this.#server !== undefined) throw new Error('kube-api-server: already listening');
    const server = createServer((req, res) => this.#handle(req, res));
    this.#server = server;
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as AddressInfo).port;
  }

  /** Stops serving: every watch and connection is cut. Objects and history are kept. */
  async close(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    this.dropWatches();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** close() then listen() on the same port; `compact` first forgets all history (old watches get 410). */
  async restart(options: { compact?: boolean } = {}): Promise<void> {
    await this.close();
    if (options.compact === true) this.compact();
    await this.listen();
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get resourceVersion(): number {
    return this.#resourceVersion;
  }

  get watchCount(): number {
    return this.#watchers.size;
  }

  /** Forgets the history: a watch from any resourceVersion before now gets 410 Gone. */
  compact(): void {
    this.#history.length = 0;
    this.#oldestResumable = this.#resourceVersion;
  }

  /** Cuts every open watch: abruptly (socket destroyed, the default) or as a server-side timeout. */
  dropWatches(options: { graceful?: boolean } = {}): void {
    for (const watcher of this.#watchers) {
      if (options.graceful === true) watcher.res.end();
      else watcher.res.destroy();
    }
    this.#watchers.clear();
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that allowed bookmarks. */
  bookmark(): void {
    for (const watcher of this.#watchers) {
      if (!watcher.bookmarks) continue;
      const { kind, apiVersion } = watcher.resource;
      const object = { kind, apiVersion, metadata: { resourceVersion: String(this.#resourceVersion) } };
      this.#send(watcher, { type: 'BOOKMARK', object });
    }
  }

  create(object: KubeObject): KubeObject {
    if (this.#objects.has(objectId(object))) throw new Error(`kube-api-server: ${objectId(object)} exists`);
    const stored = this.#store(object);
    stored.metadata.uid ??= randomUUID();
    stored.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    this.#record('ADDED', stored);
    return stored;
  }

  update(object: KubeObject): KubeObject {
    const previous = this.#objects.get(objectId(object));
    if (previous === undefined) throw new Error(`kube-api-server: ${objectId(object)} not found`);
    const stored = this.#store(object);
    stored.metadata.uid = previous.metadata.uid;
    stored.metadata.creationTimestamp = previous.metadata.creationTimestamp;
    this.#record('MODIFIED', stored);
    return stored;
  }

  delete(kind: string, namespace: string, name: string): void {
    const id = `${kind}/${namespace}/${name}`;
    const previous = this.#objects.get(id);
    if (previous === undefined) throw new Error(`kube-api-server: ${id} not found`);
    this.#objects.delete(id);
    this.#resourceVersion += 1;
    const object = structuredClone(previous);
    object.metadata.resourceVersion = String(this.#resourceVersion);
    this.#record('DELETED', object);
  }

  /** Copies the object in with a new resourceVersion (the caller's copy is never aliased). */
  #store(object: KubeObject): KubeObject {
    resourceTypeOf(object);
    const stored = structuredClone(object);
    this.#resourceVersion += 1;
    stored.metadata.resourceVersion = String(this.#resourceVersion);
    this.#objects.set(objectId(stored), stored);
    return stored;
  }

  #record(type: EventType, object: KubeObject): void {
    const event: HistoryEvent = {
      resourceVersion: this.#resourceVersion,
      type,
      resource: resourceTypeOf(object),
      object,
    };
    this.#history.push(event);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.shift();
      if (dropped !== undefined) this.#oldestResumable = dropped.resourceVersion;
    }
    for (const watcher of this.#watchers) {
      if (matches(watcher, event.resource, object)) this.#send(watcher, { type, object });
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = parsePath(url.pathname);
    if (req.method !== 'GET' || route === undefined) {
      respondStatus(res, 404, 'NotFound', `the server could not find the requested resource`);
      return;
    }
    const watch = url.searchParams.get('watch');
    if (watch === '1' || watch === 'true') this.#watch(url, route, res);
    else this.#list(route, res);
  }

  #list(route: Route, res: ServerResponse): void {
    const { resource, namespace } = route;
    const items = [...this.#objects.values()]
      .filter((object) => object.kind === resource.kind && inNamespace(object, namespace))
      .map(({ kind: _kind, apiVersion: _apiVersion, ...item }) => item);
    const body = JSON.stringify({
      kind: `${resource.kind}List`,
      apiVersion: resource.apiVersion,
      metadata: { resourceVersion: String(this.#resourceVersion) },
      items,
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    this.emit('list', resource.kind);
  }

  #watch(url: URL, route: Route, res: ServerResponse): void {
    const from = Number(url.searchParams.get('resourceVersion') ?? '0') || 0;
    const watcher: Watcher = {
      ...route,
      bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true',
      res,
    };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from !== 0 && from < this.#oldestResumable) {
      const status = {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `too old resource version: ${from} (${this.#oldestResumable})`,
        reason: 'Expired',
        code: 410,
      };
      res.end(JSON.stringify({ type: 'ERROR', object: status }) + '\n');
      this.emit('watch', route.resource.kind);
      return;
    }
    this.#watchers.add(watcher);
    res.on('close', () => this.#watchers.delete(watcher));
    if (from === 0) {
      for (const object of this.#objects.values())
        if (matches(watcher, route.resource, object)) this.#send(watcher, { type: 'ADDED', object });
    } else {
      for (const event of this.#history)
        if (event.resourceVersion > from && matches(watcher, event.resource, event.object))
          this.#send(watcher, { type: event.type, object: event.object });
    }
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    if (timeoutSeconds > 0) {
      const timer = setTimeout(() => res.end(), timeoutSeconds * 1000);
      res.on('close', () => clearTimeout(timer));
    }
    this.emit('watch', route.resource.kind);
  }

  #send(watcher: Watcher, event: { type: string; object: unknown }): void {
    if (watcher.res.writableLength > MAX_WATCH_BUFFER_BYTES) {
      watcher.res.destroy();
      this.#watchers.delete(watcher);
      return;
    }
    watcher.res.write(JSON.stringify(event) + '\n');
  }
}

interface Route {
  readonly resource: ResourceType;
  readonly namespace: string | undefined;
}

/** `/api/v1[/namespaces/NS]/PLURAL` or `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL`. */
function parsePath(path: string): Route | undefined {
  const parts = path.split('/').filter((part) => part !== '');
  let apiVersion: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    apiVersion = parts[1] ?? '';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    apiVersion = `${parts[1]}/${parts[2]}`;
    rest = parts.slice(3);
  } else {
    return undefined;
  }
  let namespace: string | undefined;
  if (rest.length === 3 && rest[0] === 'namespaces') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length !== 1) return undefined;
  const resource = RESOURCE_TYPES.find(
    (type) => type.apiVersion === apiVersion && type.plural === rest[0] && (type.namespaced || !namespace),
  );
  return resource === undefined ? undefined : { resource, namespace };
}

function resourceTypeOf(object: KubeObject): ResourceType {
  const resource = RESOURCE_TYPES.find(
    (type) => type.kind === object.kind && type.apiVersion === object.apiVersion,
  );
  if (resource === undefined)
    throw new Error(`kube-api-server: ${object.apiVersion} ${object.kind} is not served`);
  return resource;
}

function objectId(object: KubeObject): string {
  return `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

function inNamespace(object: KubeObject, namespace: string | undefined): boolean {
  return namespace === undefined || object.metadata.namespace === namespace;
}

function matches(watcher: Watcher, resource: ResourceType, object: KubeObject): boolean {
  return watcher.resource === resource && inNamespace(object, watcher.namespace);
}

function respondStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(status));
}
