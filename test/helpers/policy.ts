// Shared builders for the policy tests: real manifests through the real converter, and connections.
import { convertManifest, formatRejection } from '../../core/convert/index.js';
import type {
  AuthorizationPolicy,
  PeerAuthentication,
  PeerAuthenticationLevels,
} from '../../core/model/index.js';
import type { SpiffeIdentity } from '../../core/spiffe.js';
import type { L4Connection } from '../../agent/policy/evaluate.js';

export type Manifest = Record<string, unknown>;

function convert(manifest: Manifest): unknown {
  const result = convertManifest(manifest);
  if (result.outcome !== 'converted') {
    throw new Error(result.outcome === 'rejected' ? formatRejection(result.rejection) : result.reason);
  }
  return result.record;
}

export interface PolicyOptions {
  readonly namespace?: string;
  readonly dryRun?: boolean;
  readonly createdAt?: string;
}

/** An AuthorizationPolicy from its spec, through convertManifest; in namespace `shop` unless told. */
export function authorizationPolicy(
  name: string,
  spec: Manifest,
  options: PolicyOptions = {},
): AuthorizationPolicy {
  return convert({
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: {
      name,
      namespace: options.namespace ?? 'shop',
      ...(options.dryRun === true ? { annotations: { 'istio.io/dry-run': 'true' } } : {}),
    },
    spec,
  }) as AuthorizationPolicy;
}

export function allow(
  name: string,
  rules: readonly Manifest[] | undefined,
  options?: PolicyOptions,
): AuthorizationPolicy {
  return authorizationPolicy(name, rules === undefined ? {} : { action: 'ALLOW', rules }, options);
}

export function deny(name: string, rules: readonly Manifest[], options?: PolicyOptions): AuthorizationPolicy {
  return authorizationPolicy(name, { action: 'DENY', rules }, options);
}

export function peerAuthentication(
  name: string,
  namespace: string,
  spec: Manifest,
  createdAt?: string,
): PeerAuthentication {
  return convert({
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name, namespace, ...(createdAt === undefined ? {} : { creationTimestamp: createdAt }) },
    spec,
  }) as PeerAuthentication;
}

export function levels(partial: Partial<PeerAuthenticationLevels> = {}): PeerAuthenticationLevels {
  return { mesh: partial.mesh, namespace: partial.namespace, workload: partial.workload };
}

export const NO_PEER_AUTHENTICATION: PeerAuthenticationLevels = levels();

export function identity(
  namespace: string,
  serviceAccount: string,
  trustDomain = 'cluster.local',
): SpiffeIdentity {
  return { trustDomain, namespace, serviceAccount };
}

export interface ConnectionSpec {
  readonly src?: string;
  readonly dst?: string;
  readonly port?: number;
}

/** An mTLS connection from `namespace/serviceAccount`, by default 10.1.0.5 -> 10.2.0.7:8080. */
export function mtls(namespace: string, serviceAccount: string, spec: ConnectionSpec = {}): L4Connection {
  return connection(identity(namespace, serviceAccount), spec);
}

/** A plaintext connection: no peer identity. */
export function plaintext(spec: ConnectionSpec = {}): L4Connection {
  return connection(undefined, spec);
}

export function connection(id: SpiffeIdentity | undefined, spec: ConnectionSpec = {}): L4Connection {
  return {
    srcIp: spec.src ?? '10.1.0.5',
    srcIdentity: id,
    dstIp: spec.dst ?? '10.2.0.7',
    dstPort: spec.port ?? 8080,
  };
}
