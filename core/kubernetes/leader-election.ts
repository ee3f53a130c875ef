// Leader election over a coordination.k8s.io/v1 Lease, with client-go's leaderelection semantics, so Weft
// replicas and Kubernetes controllers read each other's leases the same way.
//
// Invariants:
// - One attempt (GET, then POST or PUT) runs at a time; the next is scheduled only when it has finished,
//   so at most one timer is pending and no two writes of ours race each other.
// - Writes carry the resourceVersion that was read: a concurrent writer makes ours fail with 409 Conflict
//   and nothing is overwritten blindly (optimistic concurrency).
// - A follower takes over only when the lease is free (no holder, as a released lease is) or when the
//   lease it observed has not changed for the holder's leaseDurationSeconds, measured from the moment
//   it first saw that version, by its own clock. renewTime is never compared with the local wall clock,
//   so clock skew between nodes cannot shorten anybody's lease.
// - A leader that has not renewed for renewDeadlineMs (by its own clock, from the start of its last
//   successful renewal) steps down and emits `following`. renewDeadline < leaseDuration, so it stops
//   acting as leader before any follower may take over. Every request of a leader is aborted at that
//   deadline, so a hung API server cannot keep it leading.
// - `leading` and `following` alternate, starting with `leading`; `following` is also emitted by
//   `stop()` when it ends a leadership.
import { EventEmitter } from 'node:events';
import {
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
  type V1LeaseSpec,
} from '@kubernetes/client-node';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { WeftError, errorMessage } from '../errors.js';
import { apiStatusCode, withSignal } from './api-call.js';
import { componentLogger } from '../log.js';

/** client-go's defaults (leaderelection.LeaderElectionConfig, as kube-controller-manager uses them). */
export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/**
 * Followers wait retryPeriod plus up to this fraction more, so replicas started together do not ask in
 * lock step. client-go uses 1.2 to spread many candidates; a CA has two or three replicas, and a smaller
 * spread keeps a takeover within leaseDuration + 1.2 × retryPeriod.
 */
const RETRY_JITTER = 0.2;

export interface LeaderElectorOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespace and name of the Lease. */
  readonly namespace: string;
  readonly name: string;
  /** This replica's holderIdentity: unique among the candidates (the pod name). */
  readonly identity: string;
  /** How long followers wait on an unchanged lease before taking it over; written in whole seconds. */
  readonly leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down. Must be below leaseDurationMs. */
  readonly renewDeadlineMs?: number;
  /** Time between attempts to acquire or renew. */
  readonly retryPeriodMs?: number;
  readonly clock?: Clock;
}

interface LeaderElectorEvents {
  /** This replica now holds the lease. */
  leading: [];
  /** This replica no longer holds the lease (it failed to renew, lost it, or stopped). */
  following: [];
}

/** The lease as this replica last saw it, and when (by its own clock) that version was first seen. */
interface Observed {
  readonly record: string;
  readonly atMs: number;
}

/** What one attempt found. */
type AttemptResult = 'acquired' | 'held-by-other' | 'conflict';

export class LeaderElector extends EventEmitter<LeaderElectorEvents> {
  readonly #api: CoordinationV1Api;
  readonly #namespace: string;
  readonly #name: string;
  readonly #identity: string;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #clock: Clock;
  readonly #log;
  #leading = false;
  #started = false;
  #stopped = false;
  #timer: TimerHandle | undefined;
  #attempt: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #observed: Observed | undefined;
  /** Start (by our clock) of the last successful acquire or renew; the renew deadline runs from here. */
  #renewedAtMs = 0;
  #failures = 0;

  constructor(options: LeaderElectorOptions) {
    super();
    this.#leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.#retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    checkTimings(this.#leaseDurationMs, this.#renewDeadlineMs, this.#retryPeriodMs);
    if (options.identity === '')
      throw new WeftError('ERR_CONFIG_INVALID', 'leader election: the identity must not be empty', {
        field: 'identity',
      });
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#namespace = options.namespace;
    this.#name = options.name;
    this.#identity = options.identity;
    this.#clock = options.clock ?? systemClock;
    this.#log = componentLogger('core.leader-election').child({
      lease: `${options.namespace}/${options.name}`,
      identity: options.identity,
    });
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Starts trying to acquire the lease at once; `leading` follows when it does. */
  start(): void {
    if (this.#started) throw new WeftError('ERR_CONFIG_INVALID', 'leader election: already started');
    this.#started = true;
    this.#schedule(0);
  }

  /**
   * Stops for good: the attempt in flight is aborted, and a held lease is released (holderIdentity
   * cleared, as client-go's ReleaseOnCancel) so a successor takes over at its next attempt instead of
   * after leaseDuration. Emits `following` when it ends a leadership.
   */
  async stop(): Promise<void> {
    if (!this.#started || this.#stopped) return;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    // An attempt cut short may have written the lease already: release checks whose it is.
    const interrupted = this.#abort !== undefined;
    this.#abort?.abort();
    await this.#attempt;
    if (!this.#leading && !interrupted) return;
    try {
      if (await this.#release()) this.#log.info({}, 'leader election: lease released');
    } catch (err) {
      this.#log.warn(
        { error: errorMessage(err) },
        'leader election: could not release the lease; a successor waits for it to expire',
      );
    }
    this.#setLeading(false, 'stopped');
  }

  #schedule(delayMs: number): void {
    this.#timer = this.#clock.schedule(delayMs, () => {
      this.#timer = undefined;
      this.#attempt = this.#tick()
        .catch((err: unknown) =>
          this.#log.error({ error: errorMessage(err) }, 'leader election: attempt failed unexpectedly'),
        )
        .finally(() => {
          // Whatever went wrong, the elector keeps running.
          if (!this.#stopped && this.#timer === undefined) this.#schedule(this.#retryPeriodMs);
        });
    });
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const startedAt = this.#clock.now();
    if (this.#leading && startedAt - this.#renewedAtMs >= this.#renewDeadlineMs)
      this.#setLeading(false, 'renew deadline passed');
    // A leader's request may not outlive its renew deadline; a follower's is bounded the same way.
    const budgetMs = this.#leading
      ? this.#renewedAtMs + this.#renewDeadlineMs - startedAt
      : this.#renewDeadlineMs;
    const abort = new AbortController();
    this.#abort = abort;
    let result: AttemptResult | undefined;
    try {
      result = await this.#tryAcquireOrRenew(AbortSignal.any([abort.signal, AbortSignal.timeout(budgetMs)]));
      this.#failures = 0;
    } catch (err) {
      this.#failures += 1;
      // The first failure of a streak is worth a warning; the rest repeat it every retry period.
      const level = this.#failures === 1 ? 'warn' : 'debug';
      this.#log[level](
        { error: errorMessage(err), failures: this.#failures, leading: this.#leading },
        'leader election: cannot reach the lease',
      );
    } finally {
      this.#abort = undefined;
    }
    if (this.#stopped) return;
    const now = this.#clock.now();
    if (result === 'acquired') {
      this.#renewedAtMs = startedAt;
      if (!this.#leading) this.#setLeading(true, 'acquired');
    } else if (this.#leading && result === 'held-by-other') {
      this.#setLeading(false, 'another replica holds the lease');
    } else if (this.#leading && now - this.#renewedAtMs >= this.#renewDeadlineMs) {
      this.#setLeading(false, 'renew deadline passed');
    }
    if (this.#leading) {
      // Come back in time to step down at the deadline if renewals keep failing.
      const untilDeadline = this.#renewedAtMs + this.#renewDeadlineMs - now;
      this.#schedule(Math.max(0, Math.min(this.#retryPeriodMs, untilDeadline)));
    } else {
      this.#schedule(this.#retryPeriodMs * (1 + Math.random() * RETRY_JITTER));
    }
  }

  /** client-go's tryAcquireOrRenew: read, decide by the observed record, then create or replace. */
  async #tryAcquireOrRenew(signal: AbortSignal): Promise<AttemptResult> {
    const now = this.#clock.now();
    const options = withSignal(signal);
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name: this.#name, namespace: this.#namespace }, options);
    } catch (err) {
      if (apiStatusCode(err) !== 404) throw err;
      const spec = this.#spec(now, undefined);
      try {
        const created = await this.#api.createNamespacedLease(
          {
            namespace: this.#namespace,
            body: { metadata: { name: this.#name, namespace: this.#namespace }, spec },
          },
          options,
        );
        this.#observe(created, now);
        return 'acquired';
      } catch (createErr) {
        if (apiStatusCode(createErr) === 409) return 'conflict';
        throw createErr;
      }
    }
    this.#observe(lease, now);
    const holder = lease.spec?.holderIdentity ?? '';
    const seconds = lease.spec?.leaseDurationSeconds;
    const durationMs = seconds !== undefined && seconds > 0 ? seconds * 1000 : this.#leaseDurationMs;
    const observedAt = this.#observed?.atMs ?? now;
    if (holder !== '' && holder !== this.#identity && observedAt + durationMs > now) return 'held-by-other';
    try {
      const replaced = await this.#api.replaceNamespacedLease(
        {
          name: this.#name,
          namespace: this.#namespace,
          // The metadata read (its resourceVersion) makes the write conditional on no change since.
          body: { ...lease, spec: this.#spec(now, lease.spec) },
        },
        options,
      );
      this.#observe(replaced, now);
      return 'acquired';
    } catch (err) {
      if (apiStatusCode(err) === 409) return 'conflict';
      throw err;
    }
  }

  /** The spec to write: a renewal keeps acquireTime and leaseTransitions, a takeover bumps them. */
  #spec(nowMs: number, previous: V1LeaseSpec | undefined): V1LeaseSpec {
    const renewing = previous?.holderIdentity === this.#identity;
    const transitions = previous?.leaseTransitions ?? 0;
    return {
      holderIdentity: this.#identity,
      leaseDurationSeconds: Math.ceil(this.#leaseDurationMs / 1000),
      acquireTime:
        renewing && previous.acquireTime !== undefined ? previous.acquireTime : new V1MicroTime(nowMs),
      renewTime: new V1MicroTime(nowMs),
      leaseTransitions: previous === undefined ? 0 : renewing ? transitions : transitions + 1,
    };
  }

  /** Notes the lease's record; a record not seen before restarts the follower's wait. */
  #observe(lease: V1Lease, nowMs: number): void {
    const record = recordOf(lease.spec);
    if (this.#observed?.record !== record) this.#observed = { record, atMs: nowMs };
  }

  /** Clears holderIdentity if we still hold the lease; a follower may then take it at once. */
  async #release(): Promise<boolean> {
    const options = withSignal(AbortSignal.timeout(this.#renewDeadlineMs));
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name: this.#name, namespace: this.#namespace }, options);
    } catch (err) {
      if (apiStatusCode(err) === 404) return false;
      throw err;
    }
    if (lease.spec?.holderIdentity !== this.#identity) return false;
    const now = new V1MicroTime(this.#clock.now());
    await this.#api.replaceNamespacedLease(
      {
        name: this.#name,
        namespace: this.#namespace,
        body: {
          ...lease,
          // As client-go's release(): no holder, a 1 s duration, the transition count kept.
          spec: {
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: lease.spec.leaseTransitions ?? 0,
          },
        },
      },
      options,
    );
    return true;
  }

  #setLeading(leading: boolean, reason: string): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    this.#log.info({ reason }, leading ? 'leader election: leading' : 'leader election: following');
    try {
      this.emit(leading ? 'leading' : 'following');
    } catch (err) {
      // A listener's bug must not stop the election.
      this.#log.error({ error: errorMessage(err) }, 'leader election: a listener failed');
    }
  }
}

/** client-go's checks on LeaderElectionConfig, so a misconfiguration fails at start, not in production. */
function checkTimings(leaseDurationMs: number, renewDeadlineMs: number, retryPeriodMs: number): void {
  const fail = (field: string, why: string): never => {
    throw new WeftError('ERR_CONFIG_INVALID', `leader election: ${field} ${why}`, { field });
  };
  if (!(retryPeriodMs > 0)) fail('retryPeriodMs', 'must be positive');
  if (!(leaseDurationMs >= 1000))
    fail('leaseDurationMs', 'must be at least 1 s (the lease holds whole seconds)');
  if (!(leaseDurationMs > renewDeadlineMs))
    fail('leaseDurationMs', `(${leaseDurationMs}) must be greater than renewDeadlineMs (${renewDeadlineMs})`);
  if (!(renewDeadlineMs > retryPeriodMs * (1 + RETRY_JITTER)))
    fail(
      'renewDeadlineMs',
      `(${renewDeadlineMs}) must be greater than ${1 + RETRY_JITTER} × retryPeriodMs (${retryPeriodMs})`,
    );
}

/**
 * The lease's record as one comparable string. Times arrive as strings (client-node leaves MicroTime
 * undecoded) or as Dates (our own writes); both are compared in one form.
 */
function recordOf(spec: V1LeaseSpec | undefined): string {
  const time = (t: unknown): string => (t instanceof Date ? t.toISOString() : String(t ?? ''));
  return JSON.stringify([
    spec?.holderIdentity ?? '',
    spec?.leaseDurationSeconds ?? 0,
    time(spec?.acquireTime),
    time(spec?.renewTime),
    spec?.leaseTransitions ?? 0,
  ]);
}
