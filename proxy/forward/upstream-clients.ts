// HTTP clients to endpoints, over the connector's byte streams: undici pools for HTTP/1.1 (keep-alive,
// one request at a time per connection) and one multiplexed HTTP/2 session per endpoint (gRPC needs
// trailers end to end, which Node's http2 client delivers and undici's does not reliably). Both are
// keyed by endpoint address and forgotten when idle, so a pod that went away leaves nothing behind.
import http2, { type ClientHttp2Session } from 'node:http2';
import { Pool } from 'undici';
import type { Duplex } from 'node:stream';
import { formatHboneAuthority } from '../../core/hbone/authority.js';
import { WeftError, errorMessage } from '../../core/errors.js';
import type { Endpoint, UpstreamConnector } from './connector.js';

/** Connections per HTTP/1.1 endpoint: enough for 1000s of rps of short requests, bounded. */
const HTTP1_CONNECTIONS_PER_ENDPOINT = 256;
/** A keep-alive connection idle this long is closed (below typical server idle timeouts). */
const HTTP1_KEEPALIVE_MS = 30_000;
/** Endpoint pools kept at most; beyond, the least recently used is closed. */
const MAX_ENDPOINT_CLIENTS = 4096;
/** HTTP/2 session settings toward backends: bounded header list, Node's defaults otherwise. */
const H2_SESSION_SETTINGS = { maxHeaderListSize: 64 * 1024, enablePush: false };
/** An HTTP/2 session with no open stream this long is closed. */
const H2_IDLE_MS = 30_000;

function endpointKey(ep: Endpoint): string {
  return formatHboneAuthority(ep.ip, ep.port);
}

export class UpstreamClients {
  readonly #connector: UpstreamConnector;
  readonly #http1 = new Map<string, Pool>();
  readonly #h2 = new Map<string, Promise<ClientHttp2Session>>();

  constructor(connector: UpstreamConnector) {
    this.#connector = connector;
  }

  /** The keep-alive HTTP/1.1 pool for `ep`. */
  http1(ep: Endpoint): Pool {
    const key = endpointKey(ep);
    let pool = this.#http1.get(key);
    if (pool) {
      // Most recently used last, so the first key is the one to evict.
      this.#http1.delete(key);
      this.#http1.set(key, pool);
      return pool;
    }
    const connector = this.#connector;
    pool = new Pool(`http://${key}`, {
      connections: HTTP1_CONNECTIONS_PER_ENDPOINT,
      pipelining: 1,
      keepAliveTimeout: HTTP1_KEEPALIVE_MS,
      keepAliveMaxTimeout: HTTP1_KEEPALIVE_MS,
      // Timeouts are the route's (request/backendRequest), enforced by the caller.
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: (_options, callback) => {
        connector.open(ep).then(
          // undici expects the callback after the current tick (it registers listeners first).
          (stream) => process.nextTick(callback, null, stream as unknown as import('node:net').Socket),
          (err: unknown) =>
            process.nextTick(callback, err instanceof Error ? err : new Error(String(err)), null),
        );
      },
    });
    this.#http1.set(key, pool);
    if (this.#http1.size > MAX_ENDPOINT_CLIENTS) {
      const [oldKey, oldPool] = this.#http1.entries().next().value!;
      this.#http1.delete(oldKey);
      void oldPool.close().catch(() => undefined);
    }
    return pool;
  }

  /** A ready HTTP/2 session to `ep` (shared by concurrent requests). */
  h2(ep: Endpoint): Promise<ClientHttp2Session> {
    const key = endpointKey(ep);
    const existing = this.#h2.get(key);
    if (existing) return existing;
    const session = this.#connectH2(ep, key);
    this.#h2.set(key, session);
    session.catch(() => this.#h2.delete(key));
    return session;
  }

  async #connectH2(ep: Endpoint, key: string): Promise<ClientHttp2Session> {
    const stream: Duplex = await this.#connector.open(ep);
    const session = http2.connect(`http://${key}`, {
      createConnection: () => stream as unknown as import('node:net').Socket,
      settings: H2_SESSION_SETTINGS,
      maxHeaderListPairs: 256,
    });
    const forget = (): void => {
      if (this.#h2.get(key) === ready) this.#h2.delete(key);
    };
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.setTimeout(H2_IDLE_MS, () => {
      // Idle: no stream for a while. Close gracefully (open streams, if any, finish).
      forget();
      session.close();
    });
    const ready = new Promise<ClientHttp2Session>((resolve, reject) => {
      session.once('connect', () => resolve(session));
      session.once('error', (err) =>
        reject(
          new WeftError('ERR_UPSTREAM', `HTTP/2 to ${key} failed: ${errorMessage(err)}`, { peer: key }, err),
        ),
      );
      session.once('close', () =>
        reject(new WeftError('ERR_UPSTREAM', `HTTP/2 to ${key} closed before its settings`, { peer: key })),
      );
    });
    return ready;
  }

  async close(): Promise<void> {
    const pools = [...this.#http1.values()];
    this.#http1.clear();
    const sessions = [...this.#h2.values()];
    this.#h2.clear();
    for (const s of sessions)
      s.then(
        (x) => x.close(),
        () => undefined,
      );
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }
}
