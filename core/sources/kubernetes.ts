// `kubernetes`: the Kubernetes API through @kubernetes/client-node informers (list, then watch), one per
// kind Weft models. In-cluster credentials by default; `kubernetes:KUBECONFIG` for development and tests.
//
// Each object the API server sends goes through `convertManifest`, the same conversion the file source
// uses, and the changes of one tick are applied to the sink as one batch.
//
// Memory at cluster scale: lists are read in pages (`limit`/`continue`), and each object is converted
// as it arrives; the informer's cache keeps only a stub (name, namespace, resourceVersion) — enough to
// skip unchanged objects and to find what a relist no longer has — never the whole object. The typed
// record in the sink is the one full copy.
//
// Invariants:
// - The first batch holds the whole first list of every kind; `start` resolves after applying it.
// - A rejected object never removes its last good record (the store keeps it); only a DELETED event
//   or its absence from a relist does.
// - A relist (after 410 Gone) replaces state: the informer diffs its cache against the new list and
//   reports what is gone as deletes, so objects deleted while the watch was down disappear. A relist's
//   changes may span more than one batch (one per page); its deletes come last.
// - An informer that fails (API server unreachable, watch refused) is started again after a backoff
//   that doubles up to `maxBackoffMs`, and falls back to `initialBackoffMs` once it lists or receives
//   an event again.
// - After `stop()` resolves no batch is applied and no informer is restarted.
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  KubeConfig,
  ListWatch,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { convertManifest } from '../convert/index.js';
import { loadKubeConfig } from '../kubernetes/config.js';
import { isObject, type JsonObject } from '../convert/fields.js';
import { looseIdentity } from '../convert/meta.js';
import { formatRejection, rejectionKey, type Rejection } from '../convert/rejection.js';
import { WeftError, errorMessage } from '../errors.js';
import { componentLogger } from '../log.js';
import { keyString, type ConfigKind, type ConfigRecord, type ObjectKey } from '../model/index.js';
import type { ConfigBatch, ConfigSink, ConfigSource } from './source.js';

const log = componentLogger('core.kubernetes-source');

/** First retry of a failed informer: quick enough to ride out an API server restart unnoticed. */
export const DEFAULT_INITIAL_BACKOFF_MS = 250;
/** Retries slow down to this, so an unreachable API server sees a few requests a minute per kind. */
export const DEFAULT_MAX_BACKOFF_MS = 30_000;
/** A list that has not answered after this long is abandoned and retried. */
export const DEFAULT_LIST_TIMEOUT_MS = 60_000;
/** Long enough for several retries against an API server that is still coming up. */
export const DEFAULT_START_TIMEOUT_MS = 120_000;
/** One page of LIST_PAGE_SIZE objects; bounded well above 500 large pods (a few KiB each). */
const MAX_PAGE_BYTES = 64 * 1024 * 1024;
/** Objects per list page: what client-go's reflector asks for. */
const LIST_PAGE_SIZE = 500;
/** A list whose continue token expires (410) mid-way starts over; this many times, then it fails. */
const MAX_LIST_RESTARTS = 3;

interface WatchedKind {
  readonly kind: ConfigKind;
  readonly apiVersion: string;
  /** The cluster-wide collection path, listed and watched. */
  readonly path: string;
}

/** Every kind convertManifest models, at the version the API server is asked for. */
const WATCHED_KINDS: readonly WatchedKind[] = [
  { kind: 'Namespace', apiVersion: 'v1', path: '/api/v1/namespaces' },
  { kind: 'Pod', apiVersion: 'v1', path: '/api/v1/pods' },
  { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services' },
  {
    kind: 'EndpointSlice',
    apiVersion: 'discovery.k8s.io/v1',
    path: '/apis/discovery.k8s.io/v1/endpointslices',
  },
  {
    kind: 'Gateway',
    apiVersion: 'gateway.networking.k8s.io/v1',
    path: '/apis/gateway.networking.k8s.io/v1/gateways',
  },
  {
    kind: 'HTTPRoute',
    apiVersion: 'gateway.networking.k8s.io/v1',
    path: '/apis/gateway.networking.k8s.io/v1/httproutes',
  },
  {
    kind: 'AuthorizationPolicy',
    apiVersion: 'security.istio.io/v1',
    path: '/apis/security.istio.io/v1/authorizationpolicies',
  },
  {
    kind: 'PeerAuthentication',
    apiVersion: 'security.istio.io/v1',
    path: '/apis/security.istio.io/v1/peerauthentications',
  },
];

export interface KubernetesSourceOptions {
  /** A kubeconfig file; without one the in-cluster service account is used. */
  readonly kubeconfigPath?: string;
  /** The kinds to watch (all Weft models by default): a component reads only what it uses. */
  readonly kinds?: readonly ConfigKind[];
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly listTimeoutMs?: number;
  /** `start` gives up (and rejects) when some kind has not listed after this long. */
  readonly startTimeoutMs?: number;
  readonly clock?: Clock;
}

/** What one tick's events did to one object; the last event wins, except that a rejection follows a good version. */
interface PendingChange {
  key: ObjectKey;
  upsert: ConfigRecord | undefined;
  deleted: boolean;
  rejection: Rejection | undefined;
}

export class KubernetesSource implements ConfigSource {
  readonly description: string;
  readonly #options: KubernetesSourceOptions;
  readonly #clock: Clock;
  readonly #informers: KindInformer[] = [];
  /** Changes since the last batch, by keyString, in arrival order. */
  readonly #pending = new Map<string, PendingChange>();
  /**
   * Rejections whose key is not the object's keyString (an object whose name Weft cannot use): the
   * store does not clear those on upsert or delete, so the source clears them itself.
   */
  readonly #looseRejections = new Map<string, string>();
  readonly #cleared = new Set<string>();
  #sink: ConfigSink | undefined;
  #flushScheduled = false;
  #loading = true;
  #stopped = false;

  constructor(options: KubernetesSourceOptions = {}) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.description =
      options.kubeconfigPath === undefined ? 'kubernetes' : `kubernetes:${options.kubeconfigPath}`;
  }

  async start(sink: ConfigSink): Promise<void> {
    if (this.#sink !== undefined)
      throw new WeftError('ERR_CONFIG_INVALID', `${this.description}: already started`);
    const config = loadKubeConfig(this.#options.kubeconfigPath, this.description);
    this.#sink = sink;
    const kinds = this.#options.kinds;
    for (const kind of WATCHED_KINDS)
      if (kinds === undefined || kinds.includes(kind.kind))
        this.#informers.push(new KindInformer(this, config, kind));
    for (const informer of this.#informers) informer.start();
    await this.#firstLists();
    if (this.#stopped) return;
    this.#loading = false;
    this.#flush(true);
    log.info({ source: this.description, kinds: this.#informers.length }, 'initial config loaded');
  }

  /** Waits for every kind's first list, up to `startTimeoutMs`; then stops and rejects, naming the kinds. */
  async #firstLists(): Promise<void> {
    let timer: TimerHandle | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = this.#clock.schedule(this.#options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS, () =>
        resolve('timeout'),
      );
    });
    const outcome = await Promise.race([
      Promise.all(this.#informers.map((informer) => informer.listedOnce)),
      deadline,
    ]);
    timer?.cancel();
    if (outcome !== 'timeout') return;
    const missing = this.#informers.filter((informer) => !informer.listed);
    await this.stop();
    const detail = missing.map((informer) => `${informer.kind} (${informer.lastError ?? 'no answer'})`);
    throw new WeftError(
      'ERR_CONFIG_INVALID',
      `${this.description}: the API server did not list ${detail.join(', ')}`,
      { field: 'config source' },
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#pending.clear();
    await Promise.all(this.#informers.map((informer) => informer.stop()));
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  get clock(): Clock {
    return this.#clock;
  }

  get options(): KubernetesSourceOptions {
    return this.#options;
  }

  /** An object was added or changed: convert it as the file source would. */
  objectChanged(watched: WatchedKind, object: KubernetesObject): void {
    if (this.#stopped) return;
    const manifest = asManifest(watched, object);
    const key = rawKey(watched, manifest);
    const id = keyString(key);
    const result = convertManifest(manifest);
    if (result.outcome === 'ignored') return;
    if (result.outcome === 'converted') {
      this.#clearLoose(id);
      const change = this.#change(id, key);
      change.upsert = result.record;
      change.deleted = false;
      change.rejection = undefined;
    } else {
      const change = this.#change(id, key);
      change.rejection = result.rejection;
      const shownAs = rejectionKey(result.rejection);
      if (shownAs !== id) this.#looseRejections.set(id, shownAs);
    }
    this.#scheduleFlush();
  }

  /** An object is gone (a DELETED event, or missing from a relist). */
  objectDeleted(watched: WatchedKind, object: KubernetesObject): void {
    if (this.#stopped) return;
    const key = rawKey(watched, asManifest(watched, object));
    const id = keyString(key);
    this.#clearLoose(id);
    const change = this.#change(id, key);
    change.upsert = undefined;
    change.rejection = undefined;
    change.deleted = true;
    this.#scheduleFlush();
  }

  #clearLoose(id: string): void {
    const loose = this.#looseRejections.get(id);
    if (loose === undefined) return;
    this.#looseRejections.delete(id);
    this.#cleared.add(loose);
  }

  #change(id: string, key: ObjectKey): PendingChange {
    let change = this.#pending.get(id);
    if (change === undefined) {
      change = { key, upsert: undefined, deleted: false, rejection: undefined };
      this.#pending.set(id, change);
    }
    return change;
  }

  /** Events of one tick (a relist reports every object in one synchronous loop) become one batch. */
  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#loading) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush(false);
    });
  }

  #flush(always: boolean): void {
    if (this.#stopped || this.#sink === undefined) return;
    if (!always && this.#pending.size === 0 && this.#cleared.size === 0) return;
    const upserts: ConfigRecord[] = [];
    const deletes: ObjectKey[] = [];
    const rejections: Rejection[] = [];
    for (const change of this.#pending.values()) {
      if (change.deleted) deletes.push(change.key);
      if (change.upsert !== undefined) upserts.push(change.upsert);
      if (change.rejection !== undefined) rejections.push(change.rejection);
    }
    const batch: ConfigBatch = { upserts, deletes, rejections, clearedRejections: [...this.#cleared] };
    this.#pending.clear();
    this.#cleared.clear();
    for (const rejection of rejections)
      log.warn({ rejection: formatRejection(rejection) }, 'config rejected');
    this.#sink.apply(batch);
  }
}

/**
 * One kind's informer and its restarts. The informer (ListWatch) relists by itself after 410 Gone and
 * re-watches after a clean end of the watch; on any other error it stops and reports it, and this class
 * starts it again after a backoff.
 */
class KindInformer {
  readonly #source: KubernetesSource;
  readonly #config: KubeConfig;
  readonly #watched: WatchedKind;
  readonly #informer: ListWatch<KubernetesObject>;
  readonly listedOnce: Promise<void>;
  /** Set when a list succeeded (its items may still be being handled; `listedOnce` waits for that). */
  listed = false;
  /** The last failure, for the error `start` gives up with. */
  lastError: string | undefined;
  #markListed: () => void = () => undefined;
  #backoffMs: number;
  #retry: TimerHandle | undefined;
  readonly #listRequests = new Set<AbortController>();

  constructor(source: KubernetesSource, config: KubeConfig, watched: WatchedKind) {
    this.#source = source;
    this.#config = config;
    this.#watched = watched;
    this.#backoffMs = this.#initialBackoffMs;
    this.listedOnce = new Promise((resolve) => (this.#markListed = resolve));
    const watch = new StubbingWatch(config, (object) => this.#arrived(object));
    this.#informer = new ListWatch(watched.path, watch, () => this.#list(), false);
    // add and update were handled as the objects arrived (`#arrived`); the informer reports stubs.
    this.#informer.on('delete', (stub) => this.#onDeleted(stub));
    this.#informer.on('error', (err: unknown) => this.#onError(err));
  }

  get #initialBackoffMs(): number {
    return this.#source.options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
  }

  start(): void {
    if (this.#source.stopped) return;
    this.#informer.start().catch((err: unknown) => this.#onError(err));
  }

  async stop(): Promise<void> {
    this.#retry?.cancel();
    this.#retry = undefined;
    for (const controller of this.#listRequests) controller.abort();
    await this.#informer.stop();
  }

  /** A whole object from a list page or a watch event: converted unless the cache has its version. */
  #arrived(object: KubernetesObject): void {
    this.#backoffMs = this.#initialBackoffMs;
    const metadata = object.metadata ?? {};
    const cached = this.#informer.get(metadata.name ?? '', metadata.namespace);
    const version = metadata.resourceVersion;
    if (version !== undefined && cached?.metadata?.resourceVersion === version) return;
    this.#source.objectChanged(this.#watched, object);
  }

  #onDeleted(object: KubernetesObject): void {
    this.#backoffMs = this.#initialBackoffMs;
    this.#source.objectDeleted(this.#watched, object);
  }

  get kind(): ConfigKind {
    return this.#watched.kind;
  }

  #onError(err: unknown): void {
    if (this.#source.stopped || this.#retry !== undefined) return;
    this.lastError = errorMessage(err);
    const delayMs = this.#backoffMs;
    this.#backoffMs = Math.min(delayMs * 2, this.#source.options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS);
    log.warn(
      {
        source: this.#source.description,
        kind: this.#watched.kind,
        error: errorMessage(err),
        retryInMs: delayMs,
      },
      'informer failed; restarting after backoff',
    );
    this.#retry = this.#source.clock.schedule(delayMs, () => {
      this.#retry = undefined;
      this.start();
    });
  }

  /**
   * The list, as raw JSON pages (the typed API clients would turn timestamps into Dates and drop fields
   * Weft validates). Each page's objects are handled as it arrives; the informer gets stubs. Items lack
   * kind and apiVersion on the wire; `asManifest` restores them.
   */
  async #list(): Promise<KubernetesListObject<KubernetesObject>> {
    const { stubs, resourceVersion, served } = await this.#listPages();
    if (this.#source.stopped) throw new Error('stopped');
    // A kind that is not served fails its watch next; keep backing off rather than list it in a loop.
    if (served) this.#backoffMs = this.#initialBackoffMs;
    this.listed = true;
    // The informer diffs the stubs against its cache right after this promise settles, in the same
    // microtask run; the kind counts as listed once that is done.
    setImmediate(this.#markListed);
    return {
      apiVersion: this.#watched.apiVersion,
      kind: `${this.#watched.kind}List`,
      metadata: { resourceVersion },
      items: stubs,
    };
  }

  /** Every page, from the start again when the continue token expires. */
  async #listPages(): Promise<{ stubs: KubernetesObject[]; resourceVersion: string; served: boolean }> {
    for (let attempt = 0; ; attempt++) {
      const stubs: KubernetesObject[] = [];
      let resourceVersion = '';
      let token: string | undefined;
      let expired = false;
      do {
        const page = await this.#getPage(token);
        if (page === 'not served') return { stubs: [], resourceVersion: '', served: false };
        if (page === 'expired') {
          expired = true;
          break;
        }
        if (this.#source.stopped) throw new Error('stopped');
        for (const item of page.items) {
          this.#arrived(item);
          stubs.push(stubOf(item));
        }
        resourceVersion = page.metadata?.resourceVersion ?? '';
        token = page.metadata?._continue ?? undefined;
      } while (token !== undefined && token !== '');
      if (!expired) return { stubs, resourceVersion, served: true };
      if (attempt + 1 >= MAX_LIST_RESTARTS)
        throw new Error(`list ${this.#watched.path}: the continue token expired ${MAX_LIST_RESTARTS} times`);
      log.info({ kind: this.#watched.kind }, 'list continue token expired; listing again from the start');
    }
  }

  async #getPage(
    token: string | undefined,
  ): Promise<KubernetesListObject<KubernetesObject> | 'not served' | 'expired'> {
    const cluster = this.#config.getCurrentCluster();
    if (cluster === null) throw new Error('no current cluster');
    const url = new URL(cluster.server + this.#watched.path);
    url.searchParams.set('limit', String(LIST_PAGE_SIZE));
    if (token !== undefined) url.searchParams.set('continue', token);
    const options: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
    await this.#config.applyToHTTPSOptions(options);
    const controller = new AbortController();
    this.#listRequests.add(controller);
    const timer = this.#source.clock.schedule(
      this.#source.options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS,
      () => controller.abort(),
    );
    try {
      const { status, body } = await getBody(url, { ...options, signal: controller.signal });
      if (status === 404) {
        // The kind's CRD is not installed (no Gateway API, no Istio): no objects of it. The watch will
        // fail the same way, and the restarts notice once the CRD appears.
        log.info({ kind: this.#watched.kind, path: this.#watched.path }, 'kind not served; treated as empty');
        return 'not served';
      }
      if (status === 410 && token !== undefined) return 'expired';
      if (status !== 200)
        throw Object.assign(new Error(`list ${url.pathname}: HTTP ${status}`), { statusCode: status });
      const parsed: unknown = JSON.parse(body);
      if (!isObject(parsed) || !Array.isArray(parsed.items))
        throw new Error(`list ${url.pathname}: the response is not a list`);
      const metadata = isObject(parsed.metadata) ? parsed.metadata : {};
      return {
        apiVersion: this.#watched.apiVersion,
        kind: `${this.#watched.kind}List`,
        metadata: {
          resourceVersion: typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : '',
          _continue: typeof metadata.continue === 'string' ? metadata.continue : undefined,
        },
        items: parsed.items as unknown as KubernetesObject[],
      };
    } finally {
      timer.cancel();
      this.#listRequests.delete(controller);
    }
  }
}

/**
 * A Watch that hands each ADDED or MODIFIED object to `arrived` whole and passes the informer only its
 * stub, so the informer's cache stays small. DELETED events become stubs too; the informer reports them.
 */
class StubbingWatch extends Watch {
  readonly #arrived: (object: KubernetesObject) => void;

  constructor(config: KubeConfig, arrived: (object: KubernetesObject) => void) {
    super(config);
    this.#arrived = arrived;
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase: string, object: KubernetesObject, event: unknown) => {
        if (phase === 'ADDED' || phase === 'MODIFIED') {
          this.#arrived(object);
          callback(phase, stubOf(object), event);
        } else if (phase === 'DELETED') {
          callback(phase, stubOf(object), event);
        } else {
          callback(phase, object, event);
        }
      },
      done,
    );
  }
}

/** What the informer keeps of an object: its key and version. */
function stubOf(object: KubernetesObject): KubernetesObject {
  const metadata = object.metadata ?? {};
  return {
    metadata: {
      name: metadata.name,
      namespace: metadata.namespace,
      resourceVersion: metadata.resourceVersion,
    },
  };
}

function getBody(url: URL, options: RequestOptions): Promise<{ status: number; body: string }> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, options, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > MAX_PAGE_BYTES) {
          req.destroy(new Error(`list ${url.pathname}: page larger than ${MAX_PAGE_BYTES} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The object as a manifest: list items come without kind and apiVersion. */
function asManifest(watched: WatchedKind, object: KubernetesObject): JsonObject {
  const raw = object as unknown as JsonObject;
  return { ...raw, kind: raw.kind ?? watched.kind, apiVersion: raw.apiVersion ?? watched.apiVersion };
}

/**
 * The object's key as far as its metadata says (as `looseIdentity` reads it), so all its events coalesce
 * and a delete names it whether or not any version of it converted.
 */
function rawKey(watched: WatchedKind, manifest: JsonObject): ObjectKey {
  return { kind: watched.kind, ...looseIdentity(manifest, watched.kind !== 'Namespace') };
}
