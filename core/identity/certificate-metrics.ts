// Prometheus metrics of the workload certificates an agent or waypoint holds, so a CA outage shows up
// before it hurts: how long each certificate has left, and whether issuance and renewal are failing.
//
// ztunnel exports no certificate metrics (it shows certificates on its admin port only); Istio's sidecar
// agent has `istio_agent_cert_expiry_seconds{resource_name}` and `num_failed_outgoing_requests{request_type=
// "csr"}`. Weft's are per SPIFFE identity (one agent holds many), so they carry Weft's own names rather
// than Istio's under a different meaning. The gauges are computed at scrape time from the manager's state,
// so a forgotten identity disappears with it and the time to expiry is exact at every scrape.
import { Counter, Gauge, type Registry } from 'prom-client';
import { systemClock, type Clock } from '../clock.js';
import type { CertificateManager } from './manager.js';

export const CERTIFICATE_METRICS = Object.freeze({
  expirySeconds: 'weft_certificate_expiry_seconds',
  consecutiveFailures: 'weft_certificate_consecutive_failures',
  requests: 'weft_certificate_requests_total',
});

/**
 * Registers the certificate metrics for `certificates` in `registry`:
 * - `weft_certificate_expiry_seconds{identity}`: seconds until the held certificate's notAfter; negative
 *   once expired (as Istio's cert_expiry_seconds). Identities with no certificate yet are absent.
 * - `weft_certificate_consecutive_failures{identity}`: CSRs failed since the last success; above 0 while
 *   the CA is unreachable or refusing, back to 0 at the next success.
 * - `weft_certificate_requests_total{result="success"|"failure"}`: CSR round trips by outcome (initial
 *   issuance and renewals alike; failure includes answers the manager rejected).
 */
export function registerCertificateMetrics(
  registry: Registry,
  certificates: CertificateManager,
  clock: Clock = systemClock,
): void {
  new Gauge({
    name: CERTIFICATE_METRICS.expirySeconds,
    help: 'Seconds until the workload certificate held for the identity expires (negative: expired)',
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset();
      const now = clock.now();
      for (const h of certificates.health())
        if (h.held) this.set({ identity: h.spiffeId }, (h.held.notAfter.getTime() - now) / 1000);
    },
  });
  new Gauge({
    name: CERTIFICATE_METRICS.consecutiveFailures,
    help: 'Certificate requests for the identity that failed since its last success',
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset();
      for (const h of certificates.health()) this.set({ identity: h.spiffeId }, h.consecutiveFailures);
    },
  });
  const requests = new Counter({
    name: CERTIFICATE_METRICS.requests,
    help: 'Certificate requests (CSRs) sent to the CA, by result',
    labelNames: ['result'],
    registers: [registry],
  });
  // Both series exist from the start, so a rate() over a failure-free agent reads 0, not "no data".
  requests.inc({ result: 'success' }, 0);
  requests.inc({ result: 'failure' }, 0);
  certificates.on('certificate', () => requests.inc({ result: 'success' }));
  certificates.on('fetch-failed', () => requests.inc({ result: 'failure' }));
}
