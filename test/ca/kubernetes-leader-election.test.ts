// core/kubernetes/leader-election.ts against the API server double, time driven by a manual clock: the
// Lease as client-go writes it, a follower's wait measured by its own clock (whatever renewTime says), a
// leader stepping down before anyone may take over, release on stop, and one winner of a race.
import t, { type Test } from 'tap';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../core/kubernetes/config.js';
import { LeaderElector, type LeaderElectorOptions } from '../../core/kubernetes/leader-election.js';
import { ManualClock } from '../helpers/clock.js';
import { kubeconfigFor, startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server.js';
import { ApiProxy, kubeconfigAt, WAIT_MS } from './kubernetes-helpers.js';

const NS = 'weft-system';
const NAME = 'weft-ca';
/** Whole seconds, so the MicroTimes written are exact. */
const START = Date.parse('2030-01-01T00:00:00Z');
const MICRO_TIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

function leaseSpec(server: KubeApiServer): LeaseSpec {
  return (server.get('Lease', NS, NAME)?.spec ?? {}) as LeaseSpec;
}

function ghostLease(renewTime: string, leaseDurationSeconds = 15) {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: NAME, namespace: NS },
    spec: {
      holderIdentity: 'ghost',
      leaseDurationSeconds,
      acquireTime: renewTime,
      renewTime,
      leaseTransitions: 4,
    },
  };
}

/** Each elector's events, stamped with the clock. */
interface Seen {
  readonly who: string;
  readonly event: 'leading' | 'following';
  readonly at: number;
}

async function started(t: Test, clock: ManualClock, objects = [] as ReturnType<typeof ghostLease>[]) {
  const server = await startKubeApiServer(t, objects);
  const kubeConfig = loadKubeConfig(kubeconfigFor(t, server), 'test');
  const seen: Seen[] = [];
  const make = (
    identity: string,
    config: KubeConfig = kubeConfig,
    options: Partial<LeaderElectorOptions> = {},
  ) => {
    const elector = new LeaderElector({
      kubeConfig: config,
      namespace: NS,
      name: NAME,
      identity,
      clock,
      ...options,
    });
    for (const event of ['leading', 'following'] as const)
      elector.on(event, () => seen.push({ who: identity, event, at: clock.now() }));
    t.teardown(() => elector.stop());
    return elector;
  };
  return { server, kubeConfig, seen, make };
}

/** Waits (real time, bounded) until `timers` attempts are scheduled: every elector's attempt has finished. */
async function settled(clock: ManualClock, timers: number): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (clock.pendingDelays().length < timers) {
    if (Date.now() > deadline)
      throw new Error(`only ${clock.pendingDelays().length} of ${timers} attempts settled`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Moves the clock `ms` forward, timer by timer, letting each attempt finish before the next fires; returns
 * with every attempt finished. `run(clock, 0, n)` runs what is due now (the first attempt after start()).
 */
async function run(clock: ManualClock, ms: number, timers: number): Promise<void> {
  const end = clock.now() + ms;
  while (true) {
    await settled(clock, timers);
    const next = clock.pendingDelays()[0];
    if (next === undefined || clock.now() + next > end) {
      clock.advance(end - clock.now());
      return;
    }
    clock.advance(next);
  }
}

t.test('acquires a missing lease and renews it, as client-go writes it', async (t) => {
  const clock = new ManualClock(START);
  const { server, seen, make } = await started(t, clock);
  const a = make('ca-a');
  a.start();
  await run(clock, 0, 1);
  t.ok(a.isLeader);
  t.same(seen, [{ who: 'ca-a', event: 'leading', at: START }]);
  const created = leaseSpec(server);
  t.same(created, {
    holderIdentity: 'ca-a',
    leaseDurationSeconds: 15,
    acquireTime: '2030-01-01T00:00:00.000000Z',
    renewTime: '2030-01-01T00:00:00.000000Z',
    leaseTransitions: 0,
  });
  t.match(created.renewTime, MICRO_TIME_RE, 'MicroTime with six fractional digits, as the API server wants');

  await run(clock, 2000, 1);
  await run(clock, 0, 1);
  t.same(
    leaseSpec(server),
    { ...created, renewTime: '2030-01-01T00:00:02.000000Z' },
    'renewed after retryPeriod: renewTime moves, acquireTime and transitions stay',
  );
  await run(clock, 60_000, 1);
  t.ok(a.isLeader, 'still leading a minute later');
  t.equal(seen.length, 1, 'no flapping');
});

for (const renewTime of ['2001-01-01T00:00:00.000000Z', '2100-01-01T00:00:00.000000Z']) {
  t.test(`a follower waits leaseDuration by its own clock (renewTime ${renewTime})`, async (t) => {
    const clock = new ManualClock(START);
    const { server, seen, make } = await started(t, clock, [ghostLease(renewTime)]);
    const b = make('ca-b');
    b.start();
    await run(clock, 14_000, 1);
    t.notOk(b.isLeader, 'an unchanged lease is not taken before 15 s have passed here');
    t.same(seen, []);
    await run(clock, 3_500, 1);
    await run(clock, 0, 1);
    t.ok(b.isLeader, 'taken over after 15 s (+ up to one retry)');
    const [leading] = seen;
    t.ok(leading !== undefined && leading.at - START >= 15_000 && leading.at - START <= 17_500);
    const spec = leaseSpec(server);
    t.equal(spec.holderIdentity, 'ca-b');
    t.equal(spec.leaseTransitions, 5, 'a takeover counts a transition');
    t.equal(spec.acquireTime, new Date(leading?.at ?? 0).toISOString().replace('Z', '000Z'));
  });
}

t.test('a renewal seen by the follower restarts its wait', async (t) => {
  const clock = new ManualClock(START);
  const { server, make } = await started(t, clock, [ghostLease('2030-01-01T00:00:00.000000Z')]);
  const b = make('ca-b');
  b.start();
  await run(clock, 10_000, 1);
  const current = server.get('Lease', NS, NAME);
  if (current === undefined) throw new Error('lease missing');
  server.update({
    ...current,
    spec: { ...(current.spec as LeaseSpec), renewTime: '2030-01-01T00:00:10.000000Z' },
  });
  await run(clock, 7_000, 1);
  t.notOk(b.isLeader, '17 s after start, but only ~5 s after the renewal it saw');
  // The follower sees the renewal at its first attempt after 10 s (≤ 12.4 s: retries come every 2 s plus
  // up to 20 % jitter) and may take over at its first attempt 15 s after that: by 29.8 s at the latest.
  await run(clock, 13_000, 1);
  await run(clock, 0, 1);
  t.ok(b.isLeader, 'taken over once the renewed lease went unchanged for 15 s');
});

t.test('a leader cut off from the API steps down before a follower may take over', async (t) => {
  const clock = new ManualClock(START);
  const { server, seen, make, kubeConfig } = await started(t, clock);
  const proxy = await ApiProxy.start(t, server);
  const a = make('ca-a', loadKubeConfig(kubeconfigAt(t, proxy.url), 'test'));
  const b = make('ca-b', kubeConfig);
  a.start();
  await run(clock, 0, 1);
  b.start();
  await run(clock, 5_000, 2);
  t.ok(a.isLeader && !b.isLeader);
  await run(clock, 0, 2);
  const lastRenew = Date.parse(leaseSpec(server).renewTime ?? '');
  await proxy.cut();
  await run(clock, 30_000, 2);
  await run(clock, 0, 2);
  const stepDown = seen.find((s) => s.who === 'ca-a' && s.event === 'following');
  const takeover = seen.find((s) => s.who === 'ca-b' && s.event === 'leading');
  if (stepDown === undefined || takeover === undefined)
    throw new Error(`missing events: ${JSON.stringify(seen)}`);
  t.ok(
    stepDown.at - lastRenew <= 10_000,
    `the leader stepped down within renewDeadline (${stepDown.at - lastRenew} ms)`,
  );
  t.ok(
    takeover.at - lastRenew >= 15_000,
    `the follower took over only after leaseDuration (${takeover.at - lastRenew} ms)`,
  );
  t.ok(stepDown.at < takeover.at, 'never two leaders');
  t.notOk(a.isLeader);
  t.ok(b.isLeader);
});

t.test('stop() releases the lease: the follower takes over at its next attempt', async (t) => {
  const clock = new ManualClock(START);
  const { server, seen, make } = await started(t, clock);
  const a = make('ca-a');
  const b = make('ca-b');
  a.start();
  await run(clock, 0, 1);
  b.start();
  await run(clock, 4_000, 2);
  await run(clock, 0, 2);
  await a.stop();
  t.same(
    seen.map((s) => `${s.who} ${s.event}`),
    ['ca-a leading', 'ca-a following'],
  );
  t.notOk(a.isLeader);
  t.same(
    [leaseSpec(server).holderIdentity, leaseSpec(server).leaseDurationSeconds],
    ['', 1],
    'released: no holder',
  );
  await run(clock, 2_400, 1);
  await run(clock, 0, 1);
  t.ok(b.isLeader, 'taken within one retry period, not after leaseDuration');
  t.equal(leaseSpec(server).leaseTransitions, 1);
});

t.test('two candidates at once: one wins, the other follows for good', async (t) => {
  const clock = new ManualClock(START);
  const { server, seen, make } = await started(t, clock);
  const creates: string[] = [];
  server.on('request', (line) => {
    if (line.startsWith('POST') && line.includes('/leases')) creates.push(line);
  });
  const a = make('ca-a');
  const b = make('ca-b');
  a.start();
  b.start();
  await run(clock, 0, 2);
  t.equal(creates.length, 2, 'both tried to create the lease');
  t.equal([a, b].filter((e) => e.isLeader).length, 1, 'exactly one leads (the other got 409)');
  const winner = a.isLeader ? 'ca-a' : 'ca-b';
  await run(clock, 60_000, 2);
  t.equal([a, b].filter((e) => e.isLeader).length, 1);
  t.equal(leaseSpec(server).holderIdentity, winner, 'the winner keeps renewing');
  t.same(
    seen.map((s) => s.who),
    [winner],
  );
});

t.test('timings that could give two leaders are refused', async (t) => {
  const server = await startKubeApiServer(t);
  const kubeConfig = loadKubeConfig(kubeconfigFor(t, server), 'test');
  const base = { kubeConfig, namespace: NS, name: NAME, identity: 'x' };
  t.throws(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 }), {
    code: 'ERR_CONFIG_INVALID',
    message: /leaseDurationMs \(10000\) must be greater than renewDeadlineMs/,
  });
  t.throws(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }), {
    message: /renewDeadlineMs/,
  });
  t.throws(() => new LeaderElector({ ...base, identity: '' }), { message: /identity/ });
});
