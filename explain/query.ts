// What `weft explain` is asked: a source, a destination and port, and optionally the HTTP request, as
// typed values. The CLI (cli/explain.ts) builds one from flags; tests build them directly.
import { canonicalIp } from '../core/model/ip.js';
import { parseSpiffeId, type SpiffeIdentity } from '../core/spiffe.js';

/** Who sends the traffic. */
export type ExplainSource =
  /** A pod in the config: enrolled (its agent captures it) or not (plaintext). */
  | { readonly kind: 'workload'; readonly namespace: string; readonly name: string }
  /** A mesh client that proves `identity` (a SPIFFE ID, or a policy principal `td/ns/N/sa/S`) from `ip`. */
  | { readonly kind: 'identity'; readonly identity: string; readonly ip: string }
  /** A plaintext client outside the mesh. */
  | { readonly kind: 'address'; readonly ip: string };

/** Where it goes; the port is the query's. */
export type ExplainDestination =
  /** A pod, addressed by its IP; the port is a container port. */
  | { readonly kind: 'workload'; readonly namespace: string; readonly name: string }
  /** A Service, addressed by its cluster IP; the port is a Service port. */
  | { readonly kind: 'service'; readonly namespace: string; readonly name: string }
  /** Any address: a Service VIP, a pod IP, or something outside the mesh. */
  | { readonly kind: 'address'; readonly ip: string };

/** The HTTP request, for ports a waypoint parses as HTTP. Unset fields take the defaults in `explainFlow`. */
export interface ExplainHttp {
  readonly method?: string;
  /** The request-target as the client sends it (path and query); normalized as the waypoint does. */
  readonly path?: string;
  readonly host?: string;
  /** Name/value pairs in order; a name may repeat. */
  readonly headers?: readonly (readonly [string, string])[];
}

export interface ExplainQuery {
  readonly source: ExplainSource;
  readonly destination: ExplainDestination;
  readonly port: number;
  readonly http?: ExplainHttp;
}

export interface ExplainOptions {
  /** The mesh's trust domain: the first segment of every workload's SPIFFE ID (cluster.local). */
  readonly trustDomain?: string;
}

/** A query that cannot be explained as asked: an unknown pod or Service, a bad address or identity. */
export class ExplainQueryError extends Error {
  override name = 'ExplainQueryError';
}

/** `spiffe://td/ns/N/sa/S`, or the principal form policies use, `td/ns/N/sa/S`. */
export function parseIdentity(text: string): SpiffeIdentity {
  const uri = text.startsWith('spiffe://') ? text : `spiffe://${text}`;
  try {
    return parseSpiffeId(uri);
  } catch (err) {
    throw new ExplainQueryError(
      `identity ${JSON.stringify(text)}: expected spiffe://<trust domain>/ns/<namespace>/sa/<service account> ` +
        `or <trust domain>/ns/<namespace>/sa/<service account> (${(err as Error).message})`,
    );
  }
}

/** The canonical text of an IP address, as the config's indexes hold them. */
export function queryIp(text: string, what: string): string {
  const ip = canonicalIp(text);
  if (ip === undefined) throw new ExplainQueryError(`${what}: ${JSON.stringify(text)} is not an IP address`);
  return ip;
}
