// The headers ztunnel sends on every CONNECT: `forwarded` (who the client is), `baggage` (the source
// workload's metadata) and a fresh W3C `traceparent` per connection.
import { randomBytes } from 'node:crypto';

export const HEADER_FORWARDED = 'forwarded';
export const HEADER_BAGGAGE = 'baggage';
export const HEADER_TRACEPARENT = 'traceparent';

/** `for="ip:port"` (IPv6 in brackets), plus `;host=<service FQDN>` when the intended service is known. */
export function forwardedHeader(clientIp: string, clientPort: number, serviceHost?: string): string {
  const addr = clientIp.includes(':') ? `[${clientIp}]:${clientPort}` : `${clientIp}:${clientPort}`;
  return serviceHost ? `for="${addr}";host=${serviceHost}` : `for="${addr}"`;
}

export interface BaggageSource {
  readonly cluster?: string | undefined;
  readonly namespace: string;
  /** The workload's kind and name, e.g. `pod` and `web-0` (deployment/job/cronjob when known). */
  readonly workloadType: string;
  readonly workloadName: string;
  readonly canonicalService?: string | undefined;
  readonly canonicalRevision?: string | undefined;
}

/** Comma-separated `k=v` pairs describing the source workload; absent values are left out. */
export function baggageHeader(src: BaggageSource): string {
  const parts: string[] = [];
  if (src.cluster) parts.push(`k8s.cluster.name=${src.cluster}`);
  parts.push(`k8s.namespace.name=${src.namespace}`);
  parts.push(`k8s.${src.workloadType}.name=${src.workloadName}`);
  if (src.canonicalService) parts.push(`service.name=${src.canonicalService}`);
  if (src.canonicalRevision) parts.push(`service.version=${src.canonicalRevision}`);
  return parts.join(',');
}

/** `00-<32 hex trace id>-<16 hex parent id>-00`, fresh for each connection (not the app's trace). */
export function newTraceparent(): string {
  const bytes = randomBytes(24);
  return `00-${bytes.toString('hex', 0, 16)}-${bytes.toString('hex', 16, 24)}-00`;
}

/** The client address from a `forwarded` header's first `for=`, or undefined. */
export function forwardedFor(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /(?:^|[;,\s])for="?([^";,]+)"?/i.exec(value);
  return m?.[1];
}
