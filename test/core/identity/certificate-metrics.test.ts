// Certificate metrics: time to expiry computed at scrape, failures counted while the CA is away and
// cleared by the next success, forgotten identities gone from the gauges.
import t from 'tap';
import { once } from 'node:events';
import { Registry } from 'prom-client';
import { rootLogger } from '../../../core/log.js';
import { CertificateManager } from '../../../core/identity/manager.js';
import { registerCertificateMetrics } from '../../../core/identity/certificate-metrics.js';
import { ManualClock } from '../../helpers/clock.js';
import { LocalCaClient } from '../../helpers/local-ca-client.js';

const id = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;
const log = rootLogger.child({ component: 'test' });

/** One sample of `name` with exactly `labels`, or undefined. */
async function sample(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const metric = await registry.getSingleMetric(name)?.get();
  const want = JSON.stringify(labels);
  return metric?.values.find((v) => JSON.stringify(v.labels) === want)?.value;
}

t.test('expiry, failures and successes through a CA outage', async (t) => {
  const clock = new ManualClock();
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
  const registry = new Registry();
  registerCertificateMetrics(registry, manager, clock);
  const expiry = () => sample(registry, 'weft_certificate_expiry_seconds', { identity: id('web') });
  const failures = () => sample(registry, 'weft_certificate_consecutive_failures', { identity: id('web') });
  const requests = (result: string) => sample(registry, 'weft_certificate_requests_total', { result });

  t.equal(await requests('failure'), 0, 'both request series exist before any request');
  t.equal(await requests('success'), 0);

  const cert = await manager.fetch(id('web'));
  const lifetimeS = (cert.notAfter.getTime() - clock.now()) / 1000;
  t.equal(await expiry(), lifetimeS, 'seconds to notAfter');
  t.equal(await failures(), 0);
  t.equal(await requests('success'), 1);

  ca.failNext = 3;
  for (let i = 1; i <= 3; i++) {
    const failed = once(manager, 'fetch-failed');
    clock.advance(clock.pendingDelays()[0]!);
    await failed;
    t.equal(await failures(), i, `failure ${i}: consecutive failures`);
  }
  t.equal(await requests('failure'), 3, 'each failed CSR counted');
  const left = await expiry();
  t.ok(left! < lifetimeS / 2 + 60, `time to expiry decreasing while renewal fails (${left} s)`);
  clock.advance(1_000);
  t.equal(await expiry(), left! - 1, 'computed at scrape: one second later, one second less');

  const renewed = once(manager, 'certificate');
  clock.advance(clock.pendingDelays()[0]!);
  const [, next] = (await renewed) as [string, typeof cert];
  t.equal(await failures(), 0, 'the next success clears the failures');
  t.equal(await requests('success'), 2, 'the renewal counted');
  t.ok((await expiry())! > lifetimeS - 60, 'expiry jumps back to a full lifetime');

  ca.hold = true; // the renewal due on the way waits at the CA, so the expired certificate is still held
  clock.advance(next.notAfter.getTime() - clock.now() + 10_000);
  t.equal(await expiry(), -10, 'negative once expired');

  manager.forget(id('web'));
  t.equal(await expiry(), undefined, 'a forgotten identity leaves the gauges');
  t.equal(await failures(), undefined);
});
