// The certificate manager: caching, half-life rotation, backoff, bounded and prioritised CSRs.
import t from 'tap';
import { once } from 'node:events';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { rootLogger } from '../../../core/log.js';
import {
  CertificateManager,
  Priority,
  INITIAL_BACKOFF_MS,
  MAX_BACKOFF_MS,
} from '../../../core/identity/manager.js';
import { GrpcCaClient } from '../../../core/identity/ca-client.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../../../ca/node-tokens.js';
import { ManualClock } from '../../helpers/clock.js';
import { LocalCaClient } from '../../helpers/local-ca-client.js';
import { removeDir, startTestCa, StaticPlacement } from '../../helpers/ca.js';

const id = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;
const log = rootLogger.child({ component: 'test' });

async function setup(
  opts: {
    ttlSeconds?: number;
    maxConcurrentCsrs?: number;
    random?: () => number;
    maxBackoffMs?: number;
  } = {},
) {
  const clock = new ManualClock();
  const ca = await LocalCaClient.create();
  ca.now = () => new Date(clock.now());
  const manager = new CertificateManager({
    caClient: ca,
    trustDomain: 'cluster.local',
    ttlSeconds: opts.ttlSeconds ?? 3600,
    log,
    clock,
    random: opts.random ?? (() => 0.5),
    ...(opts.maxConcurrentCsrs !== undefined && { maxConcurrentCsrs: opts.maxConcurrentCsrs }),
    ...(opts.maxBackoffMs !== undefined && { maxBackoffMs: opts.maxBackoffMs }),
  });
  return { clock, ca, manager };
}

t.test('one CSR for concurrent callers; cached afterwards; key stays with the manager', async (t) => {
  const { ca, manager } = await setup();
  t.teardown(() => manager.close());
  const [a, b] = await Promise.all([manager.fetch(id('web')), manager.fetch(id('web'))]);
  t.equal(a, b, 'both callers get the same certificate');
  t.same(ca.calls, [id('web')], 'one CSR');
  const again = await manager.fetch(id('web'));
  t.equal(again.serialNumber, a.serialNumber, 'served from cache');
  t.equal(ca.calls.length, 1, 'no second CSR');
  const leaf = new X509Certificate(a.certChainPem);
  const keyPub = createPublicKey(createPrivateKey(a.privateKeyPem)).export({ type: 'spki', format: 'der' });
  t.ok(leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(keyPub), 'certificate is for our key');
  t.equal(leaf.subjectAltName, `URI:${id('web')}`);
});

t.test('renews at half-life and serves the new certificate', async (t) => {
  const { clock, ca, manager } = await setup({ ttlSeconds: 3600 });
  t.teardown(() => manager.close());
  const first = await manager.fetch(id('web'));
  const lifetime = first.notAfter.getTime() - first.notBefore.getTime();
  const expectedDelay = first.notBefore.getTime() + lifetime / 2 - clock.now();
  const [delay] = clock.pendingDelays();
  t.ok(
    Math.abs(delay! - expectedDelay) < 1000,
    `refresh scheduled at half-life (${delay} ms vs ${expectedDelay} ms)`,
  );
  t.ok(delay! > 1700_000 && delay! < 1800_000, 'about 29 minutes for 1 h + 2 min backdate');
  const renewed = once(manager, 'certificate');
  clock.advance(delay! - 1);
  t.equal(ca.calls.length, 1, 'not renewed early');
  clock.advance(1);
  const [renewedId, cert] = (await renewed) as [string, { serialNumber: string }];
  t.equal(renewedId, id('web'));
  t.not(cert.serialNumber, first.serialNumber, 'a new certificate');
  t.equal((await manager.fetch(id('web'))).serialNumber, cert.serialNumber, 'the new one is served');
});

t.test(
  'keeps serving while renewal fails; backs off exponentially to the cap; fails after expiry',
  async (t) => {
    const { clock, ca, manager } = await setup({ ttlSeconds: 3600 });
    t.teardown(() => manager.close());
    const first = await manager.fetch(id('web'));
    ca.failNext = 1000;
    const delays: number[] = [];
    let delay = clock.pendingDelays()[0]!;
    for (let i = 0; i < 12; i++) {
      const failed = once(manager, 'fetch-failed');
      clock.advance(delay);
      await failed;
      delay = clock.pendingDelays()[0]!;
      delays.push(delay);
      t.equal(
        (await manager.fetch(id('web'))).serialNumber,
        first.serialNumber,
        `attempt ${i + 1}: old certificate serves`,
      );
    }
    const expected = [500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 150000, 150000, 150000];
    t.same(delays, expected, 'doubling from 500 ms, capped at 150 s (jitter neutral at random=0.5)');
    t.equal(delays[0], INITIAL_BACKOFF_MS);
    t.equal(delays.at(-1), MAX_BACKOFF_MS);
    t.match(manager.status()[0], { spiffeId: id('web'), state: 'retrying', lastError: /CA unavailable/ });

    clock.advance(first.notAfter.getTime() - clock.now() + 1);
    await t.rejects(
      manager.fetch(id('web')),
      /CA unavailable/,
      'after expiry a waiting caller sees the failure',
    );
  },
);

t.test('jitter stays within ±20 %', async (t) => {
  for (const [r, want] of [
    [0, 400],
    [0.999999, 600],
  ] as const) {
    const { clock, ca, manager } = await setup({ random: () => r });
    ca.failNext = 1;
    await t.rejects(manager.fetch(id('web')));
    const d = clock.pendingDelays()[0]!;
    t.ok(Math.abs(d - want) < 1, `random=${r}: ${d} ms ≈ ${want} ms`);
    manager.close();
  }
});

t.test('at most N CSRs at once; a waiting connection jumps the prefetch queue', async (t) => {
  const { ca, manager } = await setup({ maxConcurrentCsrs: 2 });
  t.teardown(() => manager.close());
  ca.hold = true;
  manager.setWanted([id('a'), id('b'), id('c'), id('d')]);
  await ca.waitForCalls(2);
  const urgent = manager.fetch(id('e'), Priority.RealTime);
  t.same(manager.status().filter((s) => s.state === 'fetching').length, 5, 'all five pending');
  // Keys are made concurrently, so the two CSRs may reach the CA in either order.
  t.same(
    [...ca.calls].sort(),
    [id('a'), id('b')],
    'two in flight, the rest queued; the urgent one waits for a slot too',
  );
  ca.releaseOne();
  await ca.waitForCalls(3);
  t.equal(ca.calls[2], id('e'), 'RealTime runs before queued Warmup fetches');
  t.equal(ca.heldCount(), 2, 'still two at once');
  while (ca.heldCount() > 0) ca.releaseOne();
  t.equal((await urgent).spiffeId, id('e'));
});

t.test('refuses a CA answer for another identity', async (t) => {
  const { ca, manager } = await setup();
  t.teardown(() => manager.close());
  ca.answerAs = id('admin');
  await t.rejects(
    manager.fetch(id('web')),
    /leaf names \[spiffe:\/\/cluster.local\/ns\/default\/sa\/admin\]/,
  );
  t.same(manager.status()[0]?.serialNumber, undefined, 'nothing cached');
});

t.test('setWanted prefetches new identities and forgets the others', async (t) => {
  const { clock, ca, manager } = await setup();
  t.teardown(() => manager.close());
  const ready = once(manager, 'certificate');
  manager.setWanted([id('web')]);
  await ready;
  t.same(
    manager.status().map((s) => s.spiffeId),
    [id('web')],
  );
  t.equal(clock.pendingDelays().length, 1, 'rotation armed');
  manager.setWanted([]);
  t.same(manager.status(), [], 'forgotten');
  t.equal(clock.pendingDelays().length, 0, 'its timer is cancelled');
  t.equal(ca.calls.length, 1);
  t.throws(() => manager.setWanted(['spiffe://other.org/ns/a/sa/b']), /outside trust domain/);
});

t.test('against the real CA over gRPC/TLS with a node token', async (t) => {
  const ca = await startTestCa({ placement: new StaticPlacement({ 'node-1': ['default/web'] }) });
  t.teardown(async () => {
    await ca.close();
    removeDir(ca.stateDir);
  });
  const tokenFile = join(ca.stateDir, 'agent-token');
  writeFileSync(tokenFile, createNodeToken(join(ca.stateDir, NODE_TOKENS_FILE), 'node-1'));
  const rootFile = join(ca.stateDir, 'root-cert.pem');
  const client = new GrpcCaClient({
    address: ca.grpcAddress,
    rootCertFile: rootFile,
    tokenFile,
    serverName: 'localhost',
  });
  t.teardown(() => client.close());
  const manager = new CertificateManager({
    caClient: client,
    trustDomain: 'cluster.local',
    ttlSeconds: 24 * 3600,
    log,
  });
  t.teardown(() => manager.close());
  const cert = await manager.fetch(id('web'));
  t.equal(new X509Certificate(cert.certChainPem).subjectAltName, `URI:${id('web')}`);
  t.equal(cert.rootsPem, ca.authority.rootsPem, 'trust bundle from the CA answer');
  await t.rejects(
    manager.fetch(id('db')),
    /PERMISSION_DENIED: node node-1 runs no pod with service account db/,
  );
});

t.test('after close, fetch rejects at once and setWanted does nothing', async (t) => {
  const { ca, manager } = await setup();
  manager.close();
  await t.rejects(manager.fetch(id('web')), /closed/);
  manager.setWanted([id('web')]);
  t.same(manager.status(), []);
  t.equal(ca.calls.length, 0);
  const open = (await setup()).manager;
  await t.rejects(
    open.fetch('not a spiffe id'),
    /invalid SPIFFE ID/,
    'a bad ID is a rejected promise, not a throw',
  );
  open.close();
});

t.test('connections waiting during a backoff do not add CSRs', async (t) => {
  const { clock, ca, manager } = await setup();
  t.teardown(() => manager.close());
  ca.failNext = 100;
  await t.rejects(manager.fetch(id('web')), /CA unavailable/);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => manager.fetch(id('web'))));
  t.ok(
    results.every((r) => r.status === 'rejected'),
    'they fail fast with the last error',
  );
  t.equal(ca.calls.length, 1, 'still one CSR');
  const failed = once(manager, 'fetch-failed');
  clock.advance(clock.pendingDelays()[0]!);
  await failed;
  t.equal(ca.calls.length, 2, 'the scheduled retry is the next CSR');
});

t.test('forgetting and asking again during an in-flight CSR makes one CSR', async (t) => {
  const { ca, manager } = await setup();
  t.teardown(() => manager.close());
  ca.hold = true;
  const first = manager.fetch(id('web'));
  await ca.waitForCalls(1);
  manager.forget(id('web'));
  await t.rejects(first, /no longer served/);
  const second = manager.fetch(id('web'));
  ca.releaseOne();
  t.equal((await second).spiffeId, id('web'), 'the running CSR serves the new request');
  t.equal(ca.calls.length, 1, 'one CSR');
});

t.test('a throwing listener does not derail rotation', async (t) => {
  const { clock, manager } = await setup();
  t.teardown(() => manager.close());
  manager.on('certificate', () => {
    throw new Error('listener bug');
  });
  const cert = await manager.fetch(id('web'));
  const [delay] = clock.pendingDelays();
  t.ok(delay! > 1_000_000, `rotation still armed at half-life (${delay} ms), not a retry`);
  t.notOk(manager.status()[0]?.lastError, 'no error recorded');
  t.equal((await manager.fetch(id('web'))).serialNumber, cert.serialNumber);
});

t.test('a certificate issued past its half-life renews on backoff, not in a loop', async (t) => {
  const { clock, ca, manager } = await setup({ ttlSeconds: 1 });
  t.teardown(() => manager.close());
  await manager.fetch(id('web'));
  const [delay] = clock.pendingDelays();
  t.equal(delay, INITIAL_BACKOFF_MS, 'next renewal on the backoff schedule');
  const renewed = once(manager, 'certificate');
  clock.advance(delay!);
  await renewed;
  t.equal(clock.pendingDelays()[0], 2 * INITIAL_BACKOFF_MS, 'and backing off further');
  t.equal(ca.calls.length, 2);
});

t.test('maxBackoffMs caps the retry backoff', async (t) => {
  const { clock, ca, manager } = await setup({ maxBackoffMs: 2_000 });
  t.teardown(() => manager.close());
  ca.failNext = 1000;
  await t.rejects(manager.fetch(id('web')));
  const delays = [clock.pendingDelays()[0]!];
  for (let i = 0; i < 4; i++) {
    const failed = once(manager, 'fetch-failed');
    clock.advance(delays.at(-1)!);
    await failed;
    delays.push(clock.pendingDelays()[0]!);
  }
  t.same(delays, [500, 1000, 2000, 2000, 2000], 'doubling from 500 ms up to the cap');
});

t.test('health() keeps the expired certificate and counts failures since the last success', async (t) => {
  const { clock, ca, manager } = await setup();
  t.teardown(() => manager.close());
  const cert = await manager.fetch(id('web'));
  t.same(manager.health(), [
    {
      spiffeId: id('web'),
      held: { serialNumber: cert.serialNumber, notBefore: cert.notBefore, notAfter: cert.notAfter },
      consecutiveFailures: 0,
      lastError: undefined,
    },
  ]);
  ca.failNext = 1000;
  for (let i = 0; i < 2; i++) {
    const failed = once(manager, 'fetch-failed');
    clock.advance(clock.pendingDelays()[0]!);
    await failed;
  }
  ca.hold = true; // the retry due on the way stays at the CA
  clock.advance(cert.notAfter.getTime() - clock.now() + 1);
  const [h] = manager.health();
  t.equal(h?.held?.serialNumber, cert.serialNumber, 'the expired certificate is still reported');
  t.equal(manager.status()[0]?.serialNumber, undefined, 'while status() no longer shows it');
  t.equal(h?.consecutiveFailures, 2);
  t.match(h?.lastError, /CA unavailable/);
});
