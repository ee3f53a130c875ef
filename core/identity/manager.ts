// Workload certificates for the pods of this node: fetched on demand and ahead of time, cached per
// identity, renewed at half-life; with a CertificateCache, also kept on the node across restarts.
//
// Invariants:
// - Private keys are generated here and never leave the node; the CA only ever sees CSRs. The node
//   cache (when given) holds them on the node, readable by this uid only.
// - At most one CSR per identity is in flight; callers for the same identity share it.
// - A certificate that is still valid keeps serving while its renewal fails; only expiry removes it.
// - At most `maxConcurrentCsrs` CSRs run at once; queued ones run by priority
//   (RealTime: a connection waits > Warmup: prefetch > Background: rotation), oldest first.
// - Failed fetches retry with jittered exponential backoff, capped at `maxBackoffMs` (default
//   MAX_BACKOFF_MS), per identity.
// - `health()` reports the certificate held even after it expired (`status()` and `fetch()` hide it), so
//   readiness and metrics can say how long ago it expired.
// - Every chain served, from the CA or from the cache, has passed `checkWorkloadChain`.
// - With a cache: each issuance is saved to it; `restore()` takes its certificates as if just issued
//   (served at once, held for `health()`/`status()`, renewed at half-life or soon when that has passed);
//   an identity dropped by `setWanted`/`forget` is removed from it; `close()` keeps it for the next start.
import { EventEmitter } from 'node:events';
import { WeftError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { parseSpiffeId } from '../spiffe.js';
import {
  chainsToRoots,
  exportPkcs8Pem,
  keyMatchesCertificate,
  parseCertificates,
  uriSans,
  type x509,
} from '../x509.js';
import { createWorkloadCsr } from './csr.js';
import type { CaClient } from './ca-client.js';
import type { CertificateCache } from './certificate-cache.js';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';

export enum Priority {
  RealTime = 0,
  Warmup = 1,
  Background = 2,
}

/** ztunnel's figures: first retry after 0.5 s, doubling, ±20 % jitter, at most 150 s apart. */
export const INITIAL_BACKOFF_MS = 500;
export const MAX_BACKOFF_MS = 150_000;
const JITTER = 0.2;
/** ztunnel runs at most 8 CSRs at once; more only queues work on the CA. */
export const DEFAULT_MAX_CONCURRENT_CSRS = 8;

export interface WorkloadCertificate {
  readonly spiffeId: string;
  /** PKCS#8 PEM; stays in this process. */
  readonly privateKeyPem: string;
  /** Leaf then intermediates, PEM: what a TLS endpoint presents. */
  readonly certChainPem: string;
  /** The trust bundle from the CA's answer (the last element of cert_chain). */
  readonly rootsPem: string;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export type CertificateState = 'fetching' | 'available' | 'retrying';

export interface CertificateStatus {
  readonly spiffeId: string;
  readonly state: CertificateState;
  readonly serialNumber?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  /** Leaf and intermediates in PEM: public, so safe to show. */
  readonly certChainPem?: string;
  readonly nextRefresh?: string;
  readonly lastError?: string;
}

/**
 * One identity's certificate as readiness and metrics see it: the certificate held (expired or not) and
 * how renewal is going. Public fields only: never the key.
 */
export interface CertificateHealth {
  readonly spiffeId: string;
  /** The certificate held, even if expired; undefined while none has been issued for this identity. */
  readonly held:
    { readonly serialNumber: string; readonly notBefore: Date; readonly notAfter: Date } | undefined;
  /** Failed CSRs since the last success; 0 while issuance and renewal succeed. */
  readonly consecutiveFailures: number;
  readonly lastError: string | undefined;
}

export interface CertificateManagerInputs {
  readonly caClient: CaClient;
  readonly trustDomain: string;
  /** Requested lifetime; the CA may trim it. */
  readonly ttlSeconds: number;
  readonly log: Logger;
  readonly maxConcurrentCsrs?: number;
  readonly clock?: Clock;
  /** In [0, 1); injected for deterministic jitter in tests. */
  readonly random?: () => number;
  /** Cap on the retry backoff (default MAX_BACKOFF_MS, ztunnel's); tests shorten it to bound their waits. */
  readonly maxBackoffMs?: number;
  /** Where issued certificates are kept on the node, for `restore()` after a restart. */
  readonly cache?: CertificateCache;
}

/** What a chain makes for an identity, or why it must not be served. */
export type WorkloadChainCheck =
  { readonly ok: true; readonly cert: WorkloadCertificate } | { readonly ok: false; readonly reason: string };

/**
 * The checks a chain must pass before it serves `spiffeId`, whether it comes from the CA's answer or from
 * the node cache. `chainPems` is Istio's cert_chain layout: the leaf first, then intermediates, the root
 * bundle last. The leaf must name exactly `spiffeId`, carry the public half of `privateKeyPem`, and be
 * within its validity at `at`; the chain must verify up to the roots at `at`.
 */
export async function checkWorkloadChain(
  spiffeId: string,
  chainPems: readonly string[],
  privateKeyPem: string,
  at: Date,
): Promise<WorkloadChainCheck> {
  const bad = (reason: string): WorkloadChainCheck => ({ ok: false, reason });
  if (chainPems.length < 2) return bad('cert_chain must hold a leaf and the root bundle');
  const rootsPem = chainPems[chainPems.length - 1]!;
  let certs: x509.X509Certificate[];
  let roots: x509.X509Certificate[];
  try {
    certs = chainPems.slice(0, -1).flatMap((pem) => parseCertificates(pem));
    roots = parseCertificates(rootsPem);
  } catch (err) {
    return bad(`unparseable certificate: ${errorMessage(err)}`);
  }
  const leaf = certs[0];
  if (!leaf || roots.length === 0) return bad('no parseable leaf or root certificate');
  const sans = uriSans(leaf);
  if (sans.length !== 1 || sans[0] !== spiffeId) return bad(`leaf names [${sans.join(', ')}]`);
  let keyMatches: boolean;
  try {
    keyMatches = keyMatchesCertificate(privateKeyPem, leaf);
  } catch (err) {
    return bad(`unreadable private key: ${errorMessage(err)}`);
  }
  if (!keyMatches) return bad('leaf does not carry the public half of our private key');
  if (leaf.notAfter.getTime() <= at.getTime()) return bad(`leaf expired at ${leaf.notAfter.toISOString()}`);
  if (leaf.notBefore.getTime() > at.getTime())
    return bad(`leaf is not valid before ${leaf.notBefore.toISOString()}`);
  if (!(await chainsToRoots(certs, roots, at)))
    return bad('chain does not verify up to the root bundle at the current time');
  return {
    ok: true,
    cert: {
      spiffeId,
      privateKeyPem,
      certChainPem: certs.map((c) => c.toString('pem') + '\n').join(''),
      rootsPem,
      serialNumber: leaf.serialNumber,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
    },
  };
}

/** When a certificate is due for renewal: halfway through its validity (ztunnel's and Istio's rule). */
function halfLifeMs(cert: WorkloadCertificate): number {
  return cert.notBefore.getTime() + (cert.notAfter.getTime() - cert.notBefore.getTime()) / 2;
}

class Waiter {
  constructor(
    readonly resolve: (cert: WorkloadCertificate) => void,
    readonly reject: (err: Error) => void,
  ) {}
}

/** Everything the manager knows about one identity. */
class IdentityEntry {
  current: WorkloadCertificate | undefined = undefined;
  /** Set while a fetch is queued or running. */
  job: FetchJob | undefined = undefined;
  timer: TimerHandle | undefined = undefined;
  nextRefreshMs: number | undefined = undefined;
  backoffMs = 0;
  /** Failed CSRs since the last success. */
  failures = 0;
  lastError: string | undefined = undefined;
  waiters: Waiter[] = [];

  constructor(readonly spiffeId: string) {}
}

class FetchJob {
  running = false;
  constructor(
    /** The entry the result goes to; re-pointed if the identity is forgotten and asked for again. */
    public entry: IdentityEntry,
    public priority: Priority,
    readonly seq: number,
  ) {}
}

/**
 * Events: `certificate` (spiffeId, WorkloadCertificate) after each issuance (not for a certificate
 * restored from the cache: no CSR succeeded); `fetch-failed` (spiffeId, Error).
 */
export class CertificateManager extends EventEmitter {
  readonly #in: CertificateManagerInputs;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #maxConcurrent: number;
  readonly #maxBackoffMs: number;
  readonly #entries = new Map<string, IdentityEntry>();
  readonly #queue: FetchJob[] = [];
  /** Running CSRs by identity, also those whose entry was forgotten meanwhile: one CSR per identity. */
  readonly #inflight = new Map<string, FetchJob>();
  #running = 0;
  #seq = 0;
  #closed = false;

  constructor(inputs: CertificateManagerInputs) {
    super();
    this.#in = inputs;
    this.#clock = inputs.clock ?? systemClock;
    this.#random = inputs.random ?? Math.random;
    this.#maxConcurrent = inputs.maxConcurrentCsrs ?? DEFAULT_MAX_CONCURRENT_CSRS;
    this.#maxBackoffMs = inputs.maxBackoffMs ?? MAX_BACKOFF_MS;
  }

  /**
   * A valid certificate for `spiffeId`: the cached one at once, otherwise after a fetch at `priority`
   * (a waiting connection passes RealTime, which jumps the queue). While a failed fetch is backing off
   * and nothing valid is held, it fails fast with the last error rather than adding CSRs to a CA that is
   * already failing; the scheduled retry goes on in the background.
   */
  fetch(spiffeId: string, priority: Priority = Priority.RealTime): Promise<WorkloadCertificate> {
    if (this.#closed) return Promise.reject(this.#closedError(spiffeId));
    let entry: IdentityEntry;
    try {
      entry = this.#entry(spiffeId);
    } catch (err) {
      return Promise.reject(err);
    }
    const current = entry.current;
    if (current && current.notAfter.getTime() > this.#clock.now()) return Promise.resolve(current);
    if (!entry.job && entry.timer && entry.lastError !== undefined)
      return Promise.reject(
        new WeftError('ERR_CERT_UNAVAILABLE', `no certificate for ${spiffeId} yet: ${entry.lastError}`, {
          object: spiffeId,
        }),
      );
    return new Promise((resolve, reject) => {
      entry.waiters.push(new Waiter(resolve, reject));
      this.#request(entry, priority);
    });
  }

  /** Makes sure exactly these identities are kept warm: prefetch new ones, forget the rest. */
  setWanted(spiffeIds: Iterable<string>): void {
    if (this.#closed) return;
    const wanted = new Set(spiffeIds);
    for (const id of [...this.#entries.keys()]) if (!wanted.has(id)) this.forget(id);
    for (const id of wanted) {
      const entry = this.#entry(id);
      if (!entry.current && !entry.job && !entry.timer) this.#request(entry, Priority.Warmup);
    }
  }

  /**
   * Loads the node cache's certificates (see CertificateCache.load) as if just issued: each serves at
   * once, counts as held, and renews at its half-life, or soon (Background) when that has passed. Call it
   * once, before serving and before the first `setWanted`, which then drops (and un-caches) identities
   * no longer wanted. A certificate already held that expires no earlier is kept. `trustBundlePem`: the
   * mesh roots this part is configured with; cached chains must also verify up to them. Never rejects: an
   * unreadable cache is logged and the start goes on without it. Resolves to the identities restored.
   */
  async restore(trustBundlePem?: string): Promise<string[]> {
    const cache = this.#in.cache;
    if (!cache || this.#closed) return [];
    let certs: WorkloadCertificate[];
    try {
      certs = await cache.load(this.#in.trustDomain, trustBundlePem);
    } catch (err) {
      this.#in.log.warn(
        { dir: cache.dir, error: errorMessage(err) },
        'certificate cache unreadable; starting without it',
      );
      return [];
    }
    const restored: string[] = [];
    for (const cert of certs) {
      if (this.#closed) break;
      if (this.#adopt(this.#entry(cert.spiffeId), cert)) restored.push(cert.spiffeId);
    }
    this.#in.log.info({ dir: cache.dir, restored: restored.length }, 'certificates restored from node cache');
    return restored;
  }

  /**
   * Drops an identity: its timers stop, its certificate is no longer served or renewed, and it leaves
   * the node cache.
   */
  forget(spiffeId: string): void {
    if (this.#closed) return;
    this.#drop(spiffeId);
    this.#cacheSafely(spiffeId, 'remove', (cache) => cache.remove(spiffeId));
  }

  status(): CertificateStatus[] {
    const out: CertificateStatus[] = [];
    const now = this.#clock.now();
    for (const entry of this.#entries.values()) {
      const c =
        entry.current !== undefined && entry.current.notAfter.getTime() > now ? entry.current : undefined;
      const state: CertificateState =
        entry.lastError !== undefined && !entry.job ? 'retrying' : c ? 'available' : 'fetching';
      out.push({
        spiffeId: entry.spiffeId,
        state,
        ...(c && {
          serialNumber: c.serialNumber,
          notBefore: c.notBefore.toISOString(),
          notAfter: c.notAfter.toISOString(),
          certChainPem: c.certChainPem,
        }),
        ...(entry.nextRefreshMs !== undefined && {
          nextRefresh: new Date(entry.nextRefreshMs).toISOString(),
        }),
        ...(entry.lastError !== undefined && { lastError: entry.lastError }),
      });
    }
    return out.sort((a, b) => a.spiffeId.localeCompare(b.spiffeId));
  }

  /** Every identity's held certificate and renewal state, sorted by identity; computed on each call. */
  health(): CertificateHealth[] {
    const out: CertificateHealth[] = [];
    for (const entry of this.#entries.values()) {
      const c = entry.current;
      out.push({
        spiffeId: entry.spiffeId,
        held: c && { serialNumber: c.serialNumber, notBefore: c.notBefore, notAfter: c.notAfter },
        consecutiveFailures: entry.failures,
        lastError: entry.lastError,
      });
    }
    return out.sort((a, b) => a.spiffeId.localeCompare(b.spiffeId));
  }

  /** Stops all timers; queued fetches are abandoned and their waiters rejected; later calls fail. */
  close(): void {
    this.#closed = true;
    // Not forget(): the node cache outlives this process, for the next start's restore().
    for (const id of [...this.#entries.keys()]) this.#drop(id);
  }

  #closedError(spiffeId: string): WeftError {
    return new WeftError('ERR_CERT_UNAVAILABLE', 'certificate manager is closed', { object: spiffeId });
  }

  #drop(spiffeId: string): void {
    const entry = this.#entries.get(spiffeId);
    if (!entry) return;
    this.#entries.delete(spiffeId);
    entry.timer?.cancel();
    entry.timer = undefined;
    if (entry.job && !entry.job.running) this.#dequeue(entry.job);
    this.#failWaiters(
      entry,
      new WeftError('ERR_CERT_UNAVAILABLE', `identity ${spiffeId} is no longer served by this node`, {
        object: spiffeId,
      }),
    );
  }

  #entry(spiffeId: string): IdentityEntry {
    let entry = this.#entries.get(spiffeId);
    if (!entry) {
      const identity = parseSpiffeId(spiffeId);
      if (identity.trustDomain !== this.#in.trustDomain)
        throw new WeftError(
          'ERR_SPIFFE_ID',
          `identity ${spiffeId} is outside trust domain ${this.#in.trustDomain}`,
          {
            object: spiffeId,
          },
        );
      entry = new IdentityEntry(spiffeId);
      this.#entries.set(spiffeId, entry);
      // A CSR still running from before the identity was forgotten now serves the new entry.
      const running = this.#inflight.get(spiffeId);
      if (running) {
        running.entry = entry;
        entry.job = running;
      }
    }
    return entry;
  }

  /** Queues a fetch unless one is pending; a more urgent request raises the pending one's priority. */
  #request(entry: IdentityEntry, priority: Priority): void {
    if (this.#closed) return;
    if (entry.job) {
      if (!entry.job.running && priority < entry.job.priority) entry.job.priority = priority;
      this.#pump();
      return;
    }
    entry.timer?.cancel();
    entry.timer = undefined;
    entry.nextRefreshMs = undefined;
    const job = new FetchJob(entry, priority, this.#seq++);
    entry.job = job;
    this.#queue.push(job);
    this.#pump();
  }

  #dequeue(job: FetchJob): void {
    const i = this.#queue.indexOf(job);
    if (i >= 0) this.#queue.splice(i, 1);
    job.entry.job = undefined;
  }

  #pump(): void {
    while (this.#running < this.#maxConcurrent && this.#queue.length > 0) {
      // The queue is short (bounded by identities on one node); a scan beats keeping a heap in order.
      let best = 0;
      for (let i = 1; i < this.#queue.length; i++) {
        const a = this.#queue[i]!;
        const b = this.#queue[best]!;
        if (a.priority < b.priority || (a.priority === b.priority && a.seq < b.seq)) best = i;
      }
      const job = this.#queue.splice(best, 1)[0]!;
      job.running = true;
      this.#running++;
      this.#inflight.set(job.entry.spiffeId, job);
      void this.#run(job);
    }
  }

  async #run(job: FetchJob): Promise<void> {
    const spiffeId = job.entry.spiffeId;
    let outcome: { cert: WorkloadCertificate } | { error: unknown };
    try {
      outcome = { cert: await this.#fetchOnce(spiffeId) };
    } catch (error) {
      outcome = { error };
    }
    this.#inflight.delete(spiffeId);
    this.#running--;
    // The entry may have been forgotten (and perhaps re-created, which re-points job.entry) meanwhile.
    const entry = job.entry;
    entry.job = undefined;
    if (this.#entries.get(spiffeId) === entry && !this.#closed) {
      if ('cert' in outcome) this.#succeeded(entry, outcome.cert);
      else this.#failed(entry, outcome.error);
    }
    this.#pump();
  }

  /**
   * Takes a certificate from the node cache as if just issued, renewing at its half-life or, when that
   * has passed, soon at Background priority. False when the certificate held expires no earlier.
   */
  #adopt(entry: IdentityEntry, cert: WorkloadCertificate): boolean {
    if (entry.current && entry.current.notAfter.getTime() >= cert.notAfter.getTime()) return false;
    entry.current = cert;
    for (const w of entry.waiters.splice(0)) w.resolve(cert);
    // A CSR still queued is no longer needed; one already running arms the next renewal when it ends.
    if (entry.job && !entry.job.running) this.#dequeue(entry.job);
    if (!entry.job) this.#arm(entry, Math.max(halfLifeMs(cert), this.#clock.now()), Priority.Background);
    return true;
  }

  #succeeded(entry: IdentityEntry, cert: WorkloadCertificate): void {
    entry.current = cert;
    entry.lastError = undefined;
    entry.failures = 0;
    this.#cacheSafely(entry.spiffeId, 'save', (cache) => cache.save(cert));
    const now = this.#clock.now();
    const half = halfLifeMs(cert);
    if (half > now) {
      entry.backoffMs = 0;
      this.#arm(entry, half, Priority.Background);
    } else {
      // Already past half-life at issuance (the CA's own certificate is about to expire, or clocks
      // disagree): renewing "now" would loop, so renew on the backoff schedule instead.
      const delay = this.#nextBackoff(entry);
      this.#arm(entry, now + delay, Priority.Background);
      this.#in.log.warn(
        { identity: entry.spiffeId, not_after: cert.notAfter.toISOString(), retry_in_ms: Math.round(delay) },
        'certificate issued past its half-life; renewing on backoff',
      );
    }
    this.#in.log.info(
      { identity: entry.spiffeId, serial: cert.serialNumber, not_after: cert.notAfter.toISOString() },
      'certificate ready',
    );
    for (const w of entry.waiters.splice(0)) w.resolve(cert);
    this.#emitSafely('certificate', entry.spiffeId, cert);
  }

  #failed(entry: IdentityEntry, error: unknown): void {
    entry.lastError = errorMessage(error);
    entry.failures++;
    const delay = this.#nextBackoff(entry);
    const current = entry.current;
    const stillValid = current !== undefined && current.notAfter.getTime() > this.#clock.now();
    this.#arm(entry, this.#clock.now() + delay, Priority.Background);
    this.#in.log.warn(
      {
        identity: entry.spiffeId,
        error: entry.lastError,
        retry_in_ms: Math.round(delay),
        serving: stillValid,
        // How long the CA may stay away before this identity's connections start failing.
        ...(stillValid && {
          expires_in_s: Math.round((current.notAfter.getTime() - this.#clock.now()) / 1000),
        }),
      },
      'certificate fetch failed',
    );
    if (stillValid) for (const w of entry.waiters.splice(0)) w.resolve(current);
    else this.#failWaiters(entry, error instanceof Error ? error : new Error(String(error)));
    this.#emitSafely('fetch-failed', entry.spiffeId, error);
  }

  /** Doubles the identity's backoff (first 500 ms, cap 150 s by default) and returns it with ±20 % jitter. */
  #nextBackoff(entry: IdentityEntry): number {
    const cap = this.#maxBackoffMs;
    entry.backoffMs =
      entry.backoffMs === 0 ? Math.min(INITIAL_BACKOFF_MS, cap) : Math.min(entry.backoffMs * 2, cap);
    return Math.min(cap, entry.backoffMs * (1 - JITTER + 2 * JITTER * this.#random()));
  }

  /** Listeners are observers: one that throws must not derail rotation or crash the process. */
  #emitSafely(event: 'certificate' | 'fetch-failed', spiffeId: string, value: unknown): void {
    try {
      this.emit(event, spiffeId, value);
    } catch (err) {
      this.#in.log.error(
        { identity: spiffeId, event, error: errorMessage(err) },
        'certificate event listener threw',
      );
    }
  }

  /** The node cache only spares a restart the wait for the CA: failing to write it fails nothing else. */
  #cacheSafely(spiffeId: string, action: 'save' | 'remove', fn: (cache: CertificateCache) => void): void {
    const cache = this.#in.cache;
    if (!cache) return;
    try {
      fn(cache);
    } catch (err) {
      this.#in.log.warn(
        { identity: spiffeId, action, dir: cache.dir, error: errorMessage(err) },
        'certificate cache write failed',
      );
    }
  }

  #arm(entry: IdentityEntry, atMs: number, priority: Priority): void {
    entry.timer?.cancel();
    entry.nextRefreshMs = atMs;
    entry.timer = this.#clock.schedule(atMs - this.#clock.now(), () => {
      entry.timer = undefined;
      if (this.#entries.get(entry.spiffeId) !== entry) return;
      // Timers are clamped to ~24.8 days; a refresh further out simply re-arms.
      if (this.#clock.now() < atMs) return this.#arm(entry, atMs, priority);
      // A renewal that outlived its certificate is now as urgent as a prefetch.
      const valid = entry.current !== undefined && entry.current.notAfter.getTime() > this.#clock.now();
      this.#request(entry, valid ? priority : Priority.Warmup);
    });
  }

  #failWaiters(entry: IdentityEntry, err: Error): void {
    for (const w of entry.waiters.splice(0)) w.reject(err);
  }

  /** One CSR round trip with a fresh key, and the checks the answer must pass before we serve it. */
  async #fetchOnce(spiffeId: string): Promise<WorkloadCertificate> {
    const { csrPem, keys } = await createWorkloadCsr(spiffeId);
    const chain = await this.#in.caClient.createCertificate(csrPem, spiffeId, this.#in.ttlSeconds);
    const privateKeyPem = await exportPkcs8Pem(keys.privateKey);
    const check = await checkWorkloadChain(spiffeId, chain, privateKeyPem, new Date(this.#clock.now()));
    if (!check.ok)
      throw new WeftError('ERR_CA_RESPONSE', `CA answer for ${spiffeId} rejected: ${check.reason}`, {
        object: spiffeId,
      });
    return check.cert;
  }
}
