// Certificate readiness: a CA outage alone never makes a part unready; an expired certificate does, and
// so does holding nothing at start. The verdicts as a table, then the states a real manager goes through.
import t from 'tap';
import { once } from 'node:events';
import { rootLogger } from '../../../core/log.js';
import { CertificateManager, type CertificateHealth } from '../../../core/identity/manager.js';
import { CertificateReadiness, judgeCertificates } from '../../../core/identity/certificate-readiness.js';
import { ManualClock } from '../../helpers/clock.js';
import { LocalCaClient } from '../../helpers/local-ca-client.js';

const id = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;
const log = rootLogger.child({ component: 'test' });
const NOW = Date.parse('2026-01-01T00:00:00Z');

function health(
  sa: string,
  h: { leftS?: number; failures?: number; error?: string } = {},
): CertificateHealth {
  return {
    spiffeId: id(sa),
    held:
      h.leftS === undefined
        ? undefined
        : {
            serialNumber: `serial-${sa}`,
            notBefore: new Date(NOW - 3600_000),
            notAfter: new Date(NOW + h.leftS * 1000),
          },
    consecutiveFailures: h.failures ?? 0,
    lastError: h.error,
  };
}

t.test('verdicts', (t) => {
  const cases: {
    name: string;
    health: CertificateHealth[];
    everHeld: boolean;
    want: { ready: boolean; reason?: RegExp; warnings?: RegExp[] };
  }[] = [
    { name: 'nothing wanted', health: [], everHeld: false, want: { ready: true, warnings: [] } },
    {
      name: 'start, first fetch in flight',
      health: [health('web')],
      everHeld: false,
      want: {
        ready: false,
        reason: /^no certificate for spiffe:\/\/cluster.local\/ns\/default\/sa\/web yet$/,
      },
    },
    {
      name: 'start, CA unreachable',
      health: [health('web', { failures: 3, error: 'UNAVAILABLE: connect refused' })],
      everHeld: false,
      want: { ready: false, reason: /^no certificate for .*sa\/web yet; last CA error: UNAVAILABLE/ },
    },
    {
      name: 'start, two identities failing: the first named, the count of the rest',
      health: [health('a', { failures: 1, error: 'x' }), health('b', { failures: 1, error: 'x' })],
      everHeld: false,
      want: { ready: false, reason: /sa\/a yet; last CA error: x \(and 1 more\)$/ },
    },
    {
      name: 'valid certificate, renewal succeeding',
      health: [health('web', { leftS: 3600 })],
      everHeld: true,
      want: { ready: true, warnings: [] },
    },
    {
      name: 'CA down, certificate still valid: ready, with the time to expiry',
      health: [health('web', { leftS: 1800, failures: 4, error: 'UNAVAILABLE' })],
      everHeld: true,
      want: {
        ready: true,
        warnings: [
          /^certificate for .*sa\/web expires in 1800 s; renewal failing; last CA error: UNAVAILABLE$/,
        ],
      },
    },
    {
      name: 'expired while the CA is down: not ready, naming the identity',
      health: [health('web', { leftS: -42, failures: 9, error: 'UNAVAILABLE' })],
      everHeld: true,
      want: {
        ready: false,
        reason:
          /^certificate for spiffe:\/\/cluster.local\/ns\/default\/sa\/web expired 42 s ago; last CA error/,
      },
    },
    {
      name: 'expired with a renewal in flight (no error yet)',
      health: [health('web', { leftS: 0 })],
      everHeld: true,
      want: { ready: false, reason: /expired 0 s ago; renewing$/ },
    },
    {
      name: 'one expired among valid ones',
      health: [health('a', { leftS: 100 }), health('b', { leftS: -1, failures: 1, error: 'e' })],
      everHeld: true,
      want: { ready: false, reason: /^certificate for .*sa\/b expired/ },
    },
    {
      name: 'after the start, a new identity the CA refuses is a warning, not a reason',
      health: [
        health('a', { leftS: 100 }),
        health('new', { failures: 2, error: 'PERMISSION_DENIED: node node-1 runs no pod' }),
      ],
      everHeld: true,
      want: {
        ready: true,
        warnings: [/^no certificate for .*sa\/new yet; last CA error: PERMISSION_DENIED/],
      },
    },
    {
      name: 'after the start, all identities replaced and none issued yet: still ready',
      health: [health('new', { failures: 1, error: 'e' })],
      everHeld: true,
      want: { ready: true, warnings: [/sa\/new yet/] },
    },
  ];
  for (const c of cases) {
    const v = judgeCertificates(c.health, NOW, c.everHeld);
    t.equal(v.ready, c.want.ready, `${c.name}: ready=${c.want.ready}`);
    if (!v.ready && c.want.reason) t.match(v.reason, c.want.reason, `${c.name}: reason`);
    if (v.ready && c.want.warnings) {
      t.equal(v.warnings.length, c.want.warnings.length, `${c.name}: warning count`);
      c.want.warnings.forEach((w, i) => t.match(v.warnings[i], w, `${c.name}: warning ${i}`));
    }
  }
  t.end();
});

t.test('a real manager through start, a CA outage, expiry and the CA coming back', async (t) => {
  const clock = new ManualClock(NOW);
  const ca = await LocalCaClient.create();
  ca.now = () => new Date(clock.now());
  const manager = new CertificateManager({
    caClient: ca,
    trustDomain: 'cluster.local',
    ttlSeconds: 3600,
    log,
    clock,
    random: () => 0.5,
  });
  t.teardown(() => manager.close());
  const readiness = new CertificateReadiness(manager, clock);

  t.same(readiness.check(), { ready: true, warnings: [] }, 'nothing wanted yet: ready');

  ca.failNext = 1;
  const failed = once(manager, 'fetch-failed');
  manager.setWanted([id('web')]);
  await failed;
  t.match(
    readiness.isReady(),
    /^no certificate for spiffe:\/\/cluster.local\/ns\/default\/sa\/web yet; last CA error: CA unavailable/,
    'the CA fails at start: not ready, saying why',
  );

  const issued = once(manager, 'certificate');
  clock.advance(clock.pendingDelays()[0]!);
  await issued;
  t.equal(readiness.isReady(), true, 'issued: ready');
  const cert = await manager.fetch(id('web'));

  // The CA goes away before the renewal at half-life and stays away.
  ca.failNext = 1_000;
  const renewalFailed = once(manager, 'fetch-failed');
  clock.advance(clock.pendingDelays()[0]!);
  await renewalFailed;
  const during = readiness.check();
  t.equal(during.ready, true, 'renewal failing, certificate valid: still ready');
  t.match(during.ready && during.warnings[0], /sa\/web expires in \d+ s; renewal failing; last CA error/);

  // Past expiry; the retry due meanwhile runs (and fails) on the way.
  const retried = once(manager, 'fetch-failed');
  clock.advance(cert.notAfter.getTime() - clock.now() + 5_000);
  await retried;
  t.match(
    readiness.isReady(),
    /^certificate for spiffe:\/\/cluster.local\/ns\/default\/sa\/web expired \d+ s ago; last CA error: CA unavailable/,
    'expired: not ready, naming the identity',
  );

  ca.failNext = 0;
  const back = once(manager, 'certificate');
  clock.advance(clock.pendingDelays()[0]!);
  await back;
  t.same(readiness.check(), { ready: true, warnings: [] }, 'the CA is back and issued again: ready');
});
