// SPIFFE IDs of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>: the one parser.
import { WeftError } from './errors.js';

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

export interface SpiffeIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

// Trust domain: lower-case letters, digits, '.', '-', '_' (SPIFFE ID spec §2.1).
const TRUST_DOMAIN_RE = /^[a-z0-9._-]{1,255}$/;
// Path segments: the SPIFFE ID spec's allowed set; Kubernetes names are a strict subset.
const SEGMENT_RE = /^[A-Za-z0-9._-]{1,253}$/;

export function isValidTrustDomain(td: string): boolean {
  return TRUST_DOMAIN_RE.test(td);
}

/** Parses a SPIFFE ID; throws a WeftError naming what is wrong. Exactly five path parts, `ns` and `sa`. */
export function parseSpiffeId(uri: string): SpiffeIdentity {
  const fail = (why: string): never => {
    throw new WeftError('ERR_SPIFFE_ID', `invalid SPIFFE ID ${JSON.stringify(uri)}: ${why}`, { object: uri });
  };
  if (!uri.startsWith('spiffe://')) fail('scheme must be spiffe://');
  const rest = uri.slice('spiffe://'.length);
  const parts = rest.split('/');
  if (parts.length !== 5) fail('expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>');
  const [trustDomain, nsLit, namespace, saLit, serviceAccount] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (!isValidTrustDomain(trustDomain)) fail(`bad trust domain ${JSON.stringify(trustDomain)}`);
  if (nsLit !== 'ns' || saLit !== 'sa') fail('path must be /ns/<namespace>/sa/<service-account>');
  if (!SEGMENT_RE.test(namespace)) fail(`bad namespace ${JSON.stringify(namespace)}`);
  if (!SEGMENT_RE.test(serviceAccount)) fail(`bad service account ${JSON.stringify(serviceAccount)}`);
  return { trustDomain, namespace, serviceAccount };
}

export function formatSpiffeId(id: SpiffeIdentity): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

export function sameIdentity(a: SpiffeIdentity, b: SpiffeIdentity): boolean {
  return (
    a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount
  );
}
