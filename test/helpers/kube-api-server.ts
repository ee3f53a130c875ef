// A small Kubernetes API server double: the list/watch wire protocol for the kinds Weft reads, and test
// controls to change objects, interrupt watches, restart and compact history. The only double of the
// API server in the tests; the real client (@kubernetes/client-node) talks to it unchanged.
//
// What it speaks:
// - GET list: `/api/v1/pods`, `/api/v1/namespaces/NS/pods`, `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL`
//   -> `{ kind: "<Kind>List", apiVersion, metadata: { resourceVersion, continue? }, items }` (items
//   without kind and apiVersion, as the real server sends them). `fieldSelector` (the fields the real
//   server supports for the kind; others are 400), `labelSelector` (=, ==, !=, exists, !exists), and
//   `limit` + `continue` pages over a snapshot taken by the first page (compaction expires it: 410).
// - GET, PUT (metadata.resourceVersion must match, else 409 Conflict), PATCH (JSON merge patch) and
//   DELETE on `…/PLURAL/NAME`; PUT/PATCH on `…/PLURAL/NAME/status` change only `status`. POST on a
//   collection creates (409 AlreadyExists). metadata.generation is bumped when anything but metadata
//   and status changes, as for CRDs.
// - POST `/apis/authentication.k8s.io/v1/tokenreviews`: tokens registered with `addToken`, checked for
//   audience and expiry, and for a bound pod that still exists with the same uid.
// - GET `?watch=1&resourceVersion=N`: chunked JSON lines `{ type, object }`, replaying the kept history
//   after N, then live. Without N (or N = 0) every current object is sent ADDED first.
//   `allowWatchBookmarks=true` -> BOOKMARK events on `bookmark()`; `timeoutSeconds` ends the watch.
//   N older than the kept history -> one ERROR event with a Status (410, reason Expired), then the end.
// - GET `/api/v1/namespaces/NS/pods/NAME/portforward?ports=P[,P…]` upgraded to a WebSocket, subprotocol
//   v4.channel.k8s.io (what `kubectl port-forward` and client-node's PortForward use): port i has data
//   channel 2i and error channel 2i+1; every frame starts with its channel byte; the server's first frame
//   on each channel is the port (2 bytes, little-endian); client frames carry data on the data channels.
//   The server dials the address `forwardPodPort` mapped for `NS/NAME:P` (none: refused, as a port
//   nothing listens on), and a dial that fails sends the kubelet's `error forwarding port …` text on the
//   error channel. The WebSocket closes when every port's connection has ended. No pod: 404; a pod not
//   Running: 400; no v4.channel.k8s.io offered: 400.
//
// Invariants: one global resourceVersion, bumped by every change; history keeps the last `historyLimit`
// events (older watches get 410); a watcher whose unsent output exceeds MAX_WATCH_BUFFER_BYTES is cut
// off, as a real server drops slow watchers, and a port-forward stops reading the pod's connection while
// its WebSocket has more than MAX_FORWARD_BUFFER_BYTES unsent (and the WebSocket while the pod's
// connection is full), so no buffer grows without bound. Selectors on a watch filter events by the
// object as it is now (the real server also turns "stopped matching" into DELETED; nothing in Weft
// watches with a selector).
import { randomUUID } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createRequire } from 'node:module';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A slow test client may fall this far behind before its watch is closed. */
const MAX_WATCH_BUFFER_BYTES = 4 * 1024 * 1024;
/** Enough for any test's changes; tests of compaction pass a small one or call `compact()`. */
const DEFAULT_HISTORY_LIMIT = 1000;
/** Request bodies (objects, patches, token reviews) are small; the real server's limit is 3 MiB. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** The audience a token has when a TokenReview names none: the API server's own. */
const API_SERVER_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
/** A port-forward stops reading from the pod while this much waits to go out on its WebSocket. */
const MAX_FORWARD_BUFFER_BYTES = 1024 * 1024;
/** The port-forward subprotocol served (binary; the kubelet also has a base64 one nothing here uses). */
export const PORT_FORWARD_PROTOCOL = 'v4.channel.k8s.io';

/** The members of the `ws` package's sockets used here: it ships no types, and @types/ws is not installed. */
interface WebSocketPeer {
  readonly bufferedAmount: number;
  send(data: Buffer, callback?: (err?: Error) => void): void;
  close(code?: number): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

interface WebSocketServer {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, done: (ws: WebSocketPeer) => void): void;
}

const { WebSocketServer } = createRequire(import.meta.url)('ws') as {
  WebSocketServer: new (options: {
    noServer: true;
    handleProtocols: (offered: Set<string>) => string | false;
  }) => WebSocketServer;
};

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    generation?: number;
    [key: string]: unknown;
  };
  [field: string]: unknown;
}

interface ResourceType {
  readonly kind: string;
  readonly apiVersion: string;
  readonly plural: string;
  readonly namespaced: boolean;
  /** Field selectors the real server accepts beyond metadata.name and metadata.namespace. */
  readonly fields?: readonly string[];
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  { kind: 'Namespace', apiVersion: 'v1', plural: 'namespaces', namespaced: false, fields: ['status.phase'] },
  {
    kind: 'Pod',
    apiVersion: 'v1',
    plural: 'pods',
    namespaced: true,
    fields: ['spec.nodeName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP'],
  },
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
  { kind: 'Secret', apiVersion: 'v1', plural: 'secrets', namespaced: true, fields: ['type'] },
  { kind: 'ConfigMap', apiVersion: 'v1', plural: 'configmaps', namespaced: true },
  { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1', plural: 'leases', namespaced: true },
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
  readonly selector: Selector;
  readonly bookmarks: boolean;
  readonly res: ServerResponse;
}

/** What a TokenReview says about a token `addToken` registered. */
export interface TokenIdentity {
  /** `system:serviceaccount:NS:SA` for a service-account token. */
  readonly username: string;
  readonly uid?: string;
  readonly groups?: readonly string[];
  /** e.g. `authentication.kubernetes.io/pod-name`: [name], `…/pod-uid`: [uid] for a pod-bound token. */
  readonly extra?: Readonly<Record<string, readonly string[]>>;
  /** The token's `aud` claim. */
  readonly audiences: readonly string[];
  /** Epoch ms after which the token is refused. */
  readonly expiresAt?: number;
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
  /** Any request, as `METHOD /path?query`, before it is served. */
  request: [line: string];
}

/** A list's items, fixed by its first page, handed out `limit` at a time. */
interface ListSnapshot {
  readonly resourceVersion: number;
  readonly items: readonly KubeObject[];
}

export class KubeApiServer extends EventEmitter<KubeApiServerEvents> {
  readonly #historyLimit: number;
  readonly #objects = new Map<string, KubeObject>();
  readonly #history: HistoryEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #tokens = new Map<string, TokenIdentity>();
  readonly #snapshots = new Map<string, ListSnapshot>();
  /** `NS/POD:PORT` -> where a port-forward to it connects. */
  readonly #podPorts = new Map<string, { readonly host: string; readonly port: number }>();
  readonly #forwards = new Set<WebSocketPeer>();
  readonly #webSockets = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => (offered.has(PORT_FORWARD_PROTOCOL) ? PORT_FORWARD_PROTOCOL : false),
  });
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
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
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
    // Upgraded connections are no longer the HTTP server's to close.
    for (const ws of this.#forwards) ws.terminate();
    this.#forwards.clear();
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

  /**
   * Writes a kubeconfig pointing here (`kubeconfigText`) into `dir` and returns its path.
   */
  writeKubeconfig(dir: string): string {
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, kubeconfigText(this.url));
    return path;
  }

  get resourceVersion(): number {
    return this.#resourceVersion;
  }

  get watchCount(): number {
    return this.#watchers.size;
  }

  /** Forgets the history: a watch (or list continuation) from any resourceVersion before now gets 410. */
  compact(): void {
    this.#history.length = 0;
    this.#oldestResumable = this.#resourceVersion;
    this.#snapshots.clear();
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

  /**
   * Port-forwards to `podPort` of pod `namespace/pod` connect to `to` (a local listener the test opened
   * in the pod's place). Unmapped ports refuse, as a port nothing listens on.
   */
  forwardPodPort(namespace: string, pod: string, podPort: number, to: { host?: string; port: number }): void {
    this.#podPorts.set(`${namespace}/${pod}:${podPort}`, { host: to.host ?? '127.0.0.1', port: to.port });
  }

  /** Makes `token` known to TokenReview (a projected service-account token, as the kubelet mounts). */
  addToken(token: string, identity: TokenIdentity): void {
    this.#tokens.set(token, identity);
  }

  /** The stored object (a copy), or undefined. */
  get(kind: string, namespace: string, name: string): KubeObject | undefined {
    const object = this.#objects.get(`${kind}/${namespace}/${name}`);
    return object === undefined ? undefined : structuredClone(object);
  }

  create(object: KubeObject): KubeObject {
    if (this.#objects.has(objectId(object))) throw new Error(`kube-api-server: ${objectId(object)} exists`);
    const stored = this.#store(object);
    stored.metadata.uid ??= randomUUID();
    stored.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    stored.metadata.generation = 1;
    this.#record('ADDED', stored);
    return stored;
  }

  update(object: KubeObject): KubeObject {
    const previous = this.#objects.get(objectId(object));
    if (previous === undefined) throw new Error(`kube-api-server: ${objectId(object)} not found`);
    const stored = this.#store(object);
    stored.metadata.uid = previous.metadata.uid;
    stored.metadata.creationTimestamp = previous.metadata.creationTimestamp;
    const generation = previous.metadata.generation ?? 1;
    stored.metadata.generation = specOf(previous) === specOf(stored) ? generation : generation + 1;
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
    this.emit('request', `${req.method ?? ''} ${url.pathname}${url.search}`);
    if (req.method === 'POST' && url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews') {
      void readJson(req).then((body) => this.#tokenReview(body, res), badRequest(res));
      return;
    }
    const route = parsePath(url.pathname);
    if (route === undefined) {
      respondStatus(res, 404, 'NotFound', 'the server could not find the requested resource');
      return;
    }
    if (req.method === 'GET' && route.name === undefined) {
      const watch = url.searchParams.get('watch');
      let selector: Selector;
      try {
        selector = parseSelectors(route.resource, url.searchParams);
      } catch (err) {
        respondStatus(res, 400, 'BadRequest', (err as Error).message);
        return;
      }
      if (watch === '1' || watch === 'true') this.#watch(url, route, selector, res);
      else this.#list(url, route, selector, res);
      return;
    }
    if (req.method === 'GET' && route.name !== undefined && route.subresource === undefined) {
      const object = this.#objects.get(routeId(route));
      if (object === undefined) respondNotFound(res, route);
      else respondObject(res, 200, object);
      return;
    }
    if (req.method === 'DELETE' && route.name !== undefined && route.subresource === undefined) {
      if (!this.#objects.has(routeId(route))) return respondNotFound(res, route);
      this.delete(route.resource.kind, route.namespace ?? '', route.name);
      respondStatus(res, 200, '', 'deleted', 'Success');
      return;
    }
    if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') {
      void readJson(req).then(
        (body) => this.#write(req.method ?? '', route, body, req, res),
        badRequest(res),
      );
      return;
    }
    respondStatus(res, 405, 'MethodNotAllowed', `${req.method ?? ''} is not supported here`);
  }

  /** The only upgrade served: pods/NAME/portforward. Checks before the handshake, as the real server. */
  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    this.emit('request', `${req.method ?? ''} ${url.pathname}${url.search}`);
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/portforward$/.exec(url.pathname);
    if (match === null || req.method !== 'GET')
      return refuseUpgrade(socket, 404, 'NotFound', 'the server could not find the requested resource');
    const [, namespace = '', name = ''] = match;
    const pod = this.#objects.get(`Pod/${namespace}/${name}`);
    if (pod === undefined) return refuseUpgrade(socket, 404, 'NotFound', `pods "${name}" not found`);
    const phase = fieldValue(pod, 'status.phase');
    if (phase !== 'Running')
      return refuseUpgrade(socket, 400, 'BadRequest', `pod ${name} is not running (phase ${phase})`);
    const ports = (url.searchParams.get('ports') ?? '').split(',').filter((p) => p !== '');
    if (ports.length === 0 || !ports.every((p) => /^\d+$/.test(p) && Number(p) > 0 && Number(p) < 65536))
      return refuseUpgrade(socket, 400, 'BadRequest', 'ports: one or more port numbers are required');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(PORT_FORWARD_PROTOCOL))
      return refuseUpgrade(socket, 400, 'BadRequest', `the subprotocol ${PORT_FORWARD_PROTOCOL} is required`);
    this.#webSockets.handleUpgrade(req, socket, head, (ws) =>
      this.#portForward(ws, namespace, name, pod.metadata.uid ?? '', ports.map(Number)),
    );
  }

  /** One forward: a connection per port, framed on its channel pair, the WebSocket closed when all end. */
  #portForward(ws: WebSocketPeer, namespace: string, pod: string, uid: string, ports: number[]): void {
    this.#forwards.add(ws);
    const sockets: (Socket | undefined)[] = [];
    let open = ports.length;
    const ended = (): void => {
      open -= 1;
      if (open === 0) ws.close(1000);
    };
    ports.forEach((port, index) => {
      const data = 2 * index;
      const errors = data + 1;
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16LE(port);
      ws.send(channelFrame(data, prefix));
      ws.send(channelFrame(errors, prefix));
      let done = false;
      const fail = (reason: string): void => {
        if (done) return;
        done = true;
        const text = `error forwarding port ${port} to pod ${pod}, uid ${uid}: ${reason}`;
        ws.send(channelFrame(errors, Buffer.from(text)));
        ended();
      };
      const to = this.#podPorts.get(`${namespace}/${pod}:${port}`);
      if (to === undefined) return fail(`dial tcp4 127.0.0.1:${port}: connect: connection refused`);
      const socket = connect(to.port, to.host);
      sockets[index] = socket;
      socket.on('data', (chunk: Buffer) => {
        ws.send(channelFrame(data, chunk), () => {
          if (ws.bufferedAmount <= MAX_FORWARD_BUFFER_BYTES) socket.resume();
        });
        if (ws.bufferedAmount > MAX_FORWARD_BUFFER_BYTES) socket.pause();
      });
      socket.on('drain', () => ws.resume());
      socket.on('error', (err) => fail(err.message));
      socket.on('close', () => {
        if (done) return;
        done = true;
        ended();
      });
    });
    ws.on('message', (frame: Buffer, isBinary: boolean) => {
      // Channel byte, then data; frames on an error channel or for no port are ignored, as the kubelet does.
      const channel = frame[0];
      if (!isBinary || channel === undefined || channel % 2 !== 0) return;
      const socket = sockets[channel / 2];
      if (socket !== undefined && !socket.write(frame.subarray(1))) ws.pause();
    });
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      this.#forwards.delete(ws);
      for (const socket of sockets) socket?.destroy();
    });
  }

  #write(method: string, route: Route, body: unknown, req: IncomingMessage, res: ServerResponse): void {
    const { resource } = route;
    if (!isRecord(body)) return respondStatus(res, 400, 'BadRequest', 'the body must be a JSON object');
    if (method === 'POST') {
      if (route.name !== undefined) return respondStatus(res, 405, 'MethodNotAllowed', 'POST a collection');
      const object = { ...body, kind: resource.kind, apiVersion: resource.apiVersion } as KubeObject;
      if (
        !isRecord(object.metadata) ||
        typeof object.metadata.name !== 'string' ||
        object.metadata.name === ''
      )
        return respondStatus(res, 422, 'Invalid', 'metadata.name: Required value');
      if (resource.namespaced) object.metadata.namespace = route.namespace ?? object.metadata.namespace;
      if (this.#objects.has(objectId(object)))
        return respondStatus(
          res,
          409,
          'AlreadyExists',
          `${resource.plural} "${object.metadata.name}" already exists`,
        );
      delete object.metadata.resourceVersion;
      return respondObject(res, 201, this.create(object));
    }
    if (route.name === undefined) return respondStatus(res, 405, 'MethodNotAllowed', `${method} an object`);
    const current = this.#objects.get(routeId(route));
    if (current === undefined) return respondNotFound(res, route);
    let next: KubeObject;
    if (method === 'PATCH') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
      if (type !== 'application/merge-patch+json')
        return respondStatus(res, 415, 'UnsupportedMediaType', `patch type ${type ?? ''} is not supported`);
      const patched = mergePatch(structuredClone(current), body) as KubeObject;
      next = route.subresource === 'status' ? { ...current, status: patched.status } : patched;
      const wanted = isRecord(body.metadata) ? body.metadata.resourceVersion : undefined;
      if (wanted !== undefined && wanted !== current.metadata.resourceVersion)
        return respondConflict(res, route);
    } else {
      const given = body as KubeObject;
      const wanted = isRecord(given.metadata) ? given.metadata.resourceVersion : undefined;
      if (wanted !== undefined && wanted !== current.metadata.resourceVersion)
        return respondConflict(res, route);
      next =
        route.subresource === 'status'
          ? { ...current, status: given.status }
          : { ...given, status: current.status, kind: resource.kind, apiVersion: resource.apiVersion };
    }
    next.metadata = { ...next.metadata, name: current.metadata.name };
    if (resource.namespaced) next.metadata.namespace = current.metadata.namespace;
    respondObject(res, 200, this.update(next));
  }

  #tokenReview(body: unknown, res: ServerResponse): void {
    const spec = isRecord(body) && isRecord(body.spec) ? body.spec : {};
    const token = typeof spec.token === 'string' ? spec.token : '';
    const asked = Array.isArray(spec.audiences) ? spec.audiences.map(String) : [API_SERVER_AUDIENCE];
    const identity = this.#tokens.get(token);
    const refuse = (error: string) =>
      respondObject(res, 201, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        metadata: { name: '' },
        spec: { audiences: asked },
        status: { authenticated: false, user: {}, error },
      });
    if (identity === undefined) return refuse('invalid bearer token');
    if (identity.expiresAt !== undefined && Date.now() >= identity.expiresAt)
      return refuse('invalid bearer token, token has expired');
    const audiences = asked.filter((audience) => identity.audiences.includes(audience));
    if (audiences.length === 0)
      return refuse(
        'invalid bearer token, token audiences ' +
          JSON.stringify(identity.audiences) +
          ' is invalid for the target audiences ' +
          JSON.stringify(asked),
      );
    const podName = identity.extra?.['authentication.kubernetes.io/pod-name']?.[0];
    const podUid = identity.extra?.['authentication.kubernetes.io/pod-uid']?.[0];
    if (podName !== undefined) {
      const namespace = identity.username.split(':')[2] ?? '';
      const pod = this.#objects.get(`Pod/${namespace}/${podName}`);
      if (pod === undefined || (podUid !== undefined && pod.metadata.uid !== podUid))
        return refuse('invalid bearer token, pod bound to the token no longer exists');
    }
    respondObject(res, 201, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      metadata: { name: '' },
      spec: { audiences: asked },
      status: {
        authenticated: true,
        user: {
          username: identity.username,
          uid: identity.uid ?? randomUUID(),
          groups: identity.groups ?? ['system:serviceaccounts', 'system:authenticated'],
          extra: identity.extra ?? {},
        },
        audiences,
      },
    });
  }

  #list(url: URL, route: Route, selector: Selector, res: ServerResponse): void {
    const { resource } = route;
    const limit = Number(url.searchParams.get('limit') ?? '0');
    const token = url.searchParams.get('continue');
    let snapshot: ListSnapshot;
    let offset = 0;
    if (token !== null && token !== '') {
      const [id, from] = token.split(':');
      const found = this.#snapshots.get(id ?? '');
      if (found === undefined) {
        respondStatus(
          res,
          410,
          'Expired',
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
        );
        return;
      }
      snapshot = found;
      offset = Number(from) || 0;
    } else {
      // The map's keys are the objects' ids: sorted once, not rebuilt per comparison.
      const matching: [string, KubeObject][] = [];
      for (const entry of this.#objects)
        if (matches({ resource, namespace: route.namespace, selector }, resource, entry[1]))
          matching.push(entry);
      matching.sort(([a], [b]) => (a < b ? -1 : 1));
      snapshot = { resourceVersion: this.#resourceVersion, items: matching.map(([, object]) => object) };
    }
    const end = limit > 0 ? Math.min(offset + limit, snapshot.items.length) : snapshot.items.length;
    const page = snapshot.items
      .slice(offset, end)
      .map(({ kind: _kind, apiVersion: _apiVersion, ...item }) => item);
    const metadata: Record<string, string> = { resourceVersion: String(snapshot.resourceVersion) };
    if (end < snapshot.items.length) {
      const id = token?.split(':')[0] ?? randomUUID();
      this.#snapshots.set(id, snapshot);
      metadata.continue = `${id}:${end}`;
    } else if (token !== null) {
      this.#snapshots.delete(token.split(':')[0] ?? '');
    }
    const body = JSON.stringify({
      kind: `${resource.kind}List`,
      apiVersion: resource.apiVersion,
      metadata,
      items: page,
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    this.emit('list', resource.kind);
  }

  #watch(url: URL, route: Route, selector: Selector, res: ServerResponse): void {
    const from = Number(url.searchParams.get('resourceVersion') ?? '0') || 0;
    const watcher: Watcher = {
      resource: route.resource,
      namespace: route.namespace,
      selector,
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
  readonly name: string | undefined;
  readonly subresource: string | undefined;
}

/** `/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]` or `/apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/SUB]]`. */
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
  // `namespaces/NS/PLURAL…` is a namespaced collection; `namespaces` or `namespaces/NAME` the Namespaces.
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length < 1 || rest.length > 3) return undefined;
  const [plural, name, subresource] = rest;
  if (subresource !== undefined && subresource !== 'status') return undefined;
  const resource = RESOURCE_TYPES.find(
    (type) => type.apiVersion === apiVersion && type.plural === plural && (type.namespaced || !namespace),
  );
  if (resource === undefined) return undefined;
  // A single namespaced object is addressed through its namespace.
  if (name !== undefined && resource.namespaced && namespace === undefined) return undefined;
  return { resource, namespace, name, subresource };
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

function routeId(route: Route): string {
  return `${route.resource.kind}/${route.namespace ?? ''}/${route.name ?? ''}`;
}

/** What decides metadata.generation: everything but metadata, status and the type fields. */
function specOf(object: KubeObject): string {
  const { metadata: _metadata, status: _status, kind: _kind, apiVersion: _apiVersion, ...spec } = object;
  return JSON.stringify(spec);
}

function inNamespace(object: KubeObject, namespace: string | undefined): boolean {
  return namespace === undefined || object.metadata.namespace === namespace;
}

function matches(
  watcher: Pick<Watcher, 'resource' | 'namespace' | 'selector'>,
  resource: ResourceType,
  object: KubeObject,
): boolean {
  return (
    watcher.resource === resource &&
    object.kind === resource.kind &&
    inNamespace(object, watcher.namespace) &&
    watcher.selector(object)
  );
}

// ---- selectors ----------------------------------------------------------------------------------

type Selector = (object: KubeObject) => boolean;

interface Requirement {
  readonly key: string;
  readonly op: '=' | '!=' | 'exists' | '!exists';
  readonly value: string;
}

/** `a=b,c!=d` (field) and `a=b,c!=d,e,!f` (label); `==` is `=`. Throws on a field the kind does not support. */
function parseSelectors(resource: ResourceType, params: URLSearchParams): Selector {
  const fields = parseRequirements(params.get('fieldSelector') ?? '', false);
  const supported = new Set(['metadata.name', 'metadata.namespace', ...(resource.fields ?? [])]);
  for (const field of fields)
    if (!supported.has(field.key)) throw new Error(`field label not supported: ${field.key}`);
  const labels = parseRequirements(params.get('labelSelector') ?? '', true);
  return (object) =>
    fields.every((r) => holds(r, fieldValue(object, r.key))) &&
    labels.every((r) => holds(r, labelValue(object, r.key)));
}

function parseRequirements(text: string, labels: boolean): Requirement[] {
  if (text.trim() === '') return [];
  return text.split(',').map((part) => {
    const term = part.trim();
    const match = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (match !== null) {
      const [, key = '', op = '', value = ''] = match;
      return { key, op: op === '!=' ? '!=' : '=', value };
    }
    if (labels && /^!?[A-Za-z0-9./_-]+$/.test(term))
      return term.startsWith('!')
        ? { key: term.slice(1), op: '!exists', value: '' }
        : { key: term, op: 'exists', value: '' };
    throw new Error(`invalid selector: ${JSON.stringify(term)}`);
  });
}

function holds(requirement: Requirement, value: string | undefined): boolean {
  switch (requirement.op) {
    case '=':
      return (value ?? '') === requirement.value;
    case '!=':
      return (value ?? '') !== requirement.value;
    case 'exists':
      return value !== undefined;
    case '!exists':
      return value === undefined;
  }
}

/** A field as the server compares it: unset is "", booleans and numbers as text. */
function fieldValue(object: KubeObject, path: string): string {
  let at: unknown = object;
  for (const step of path.split('.')) at = isRecord(at) ? at[step] : undefined;
  return at === undefined || at === null ? '' : String(at);
}

function labelValue(object: KubeObject, key: string): string | undefined {
  const labels = object.metadata.labels;
  if (!isRecord(labels)) return undefined;
  const value = labels[key];
  return typeof value === 'string' ? value : undefined;
}

// ---- bodies and answers -------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386: objects merge key by key, null removes, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return patch;
  const result: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_BODY_BYTES) throw new Error(`request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function badRequest(res: ServerResponse): (err: unknown) => void {
  return (err) => respondStatus(res, 400, 'BadRequest', err instanceof Error ? err.message : String(err));
}

function respondObject(res: ServerResponse, code: number, object: object): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(object));
}

function respondNotFound(res: ServerResponse, route: Route): void {
  respondStatus(res, 404, 'NotFound', `${route.resource.plural} "${route.name ?? ''}" not found`);
}

function respondConflict(res: ServerResponse, route: Route): void {
  respondStatus(
    res,
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${route.resource.plural} "${route.name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`,
  );
}

/** A frame of the channel protocols: the channel byte, then the payload. */
function channelFrame(channel: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(payload.length + 1);
  frame[0] = channel;
  payload.copy(frame, 1);
  return frame;
}

/** Answers an upgrade the server will not make with a Status, as it answers any request. */
function refuseUpgrade(socket: Duplex, code: number, reason: string, message: string): void {
  const body = JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });
  const head = [
    `HTTP/1.1 ${code} ${STATUS_CODES[code] ?? reason}`,
    'content-type: application/json',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

function respondStatus(
  res: ServerResponse,
  code: number,
  reason: string,
  message: string,
  status: 'Failure' | 'Success' = 'Failure',
): void {
  const body = { kind: 'Status', apiVersion: 'v1', metadata: {}, status, message, reason, code };
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

interface Teardowns {
  teardown(fn: () => unknown): void;
}

/** A listening double holding `objects`, closed when the test ends. */
export async function startKubeApiServer(
  t: Teardowns,
  objects: readonly KubeObject[] = [],
  options: KubeApiServerOptions = {},
): Promise<KubeApiServer> {
  const server = new KubeApiServer(options);
  await server.listen();
  t.teardown(() => server.close());
  for (const object of objects) server.create(object);
  return server;
}

/** A kubeconfig for `server` in a temporary folder removed when the test ends. */
export function kubeconfigFor(t: Teardowns, server: KubeApiServer): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-kubeconfig-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return server.writeKubeconfig(dir);
}

/**
 * A kubeconfig for the API server at `url`. The client refuses plain http unless TLS verification is
 * off, hence `insecure-skip-tls-verify`.
 */
export function kubeconfigText(url: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{ name: double, cluster: { server: "${url}", insecure-skip-tls-verify: true } }]`,
    'users: [{ name: test, user: {} }]',
    'contexts: [{ name: double, context: { cluster: double, user: test } }]',
    'current-context: double',
    '',
  ].join('\n');
}
