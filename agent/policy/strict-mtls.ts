// PeerAuthentication at the node agent: which destination ports require a peer identity (authz.md §8,
// ztunnel.md §5.4). Resolved once per config change into a default plus the ports that differ, so a
// connection costs one Set lookup.
//
// Only STRICT rejects anything: a connection without a peer identity (plaintext that did not arrive over
// HBONE). PERMISSIVE and DISABLE accept plaintext (DISABLE cannot switch HBONE mTLS off). Istio enforces
// STRICT as a DENY policy, so the evaluator checks it before any ALLOW.
import {
  effectiveMtlsMode,
  type EffectiveMtlsMode,
  type PeerAuthenticationLevels,
} from '../../core/model/peer-auth.js';
import { deniedByPeerAuthentication, type DeniedByPeerAuthentication } from '../../core/authz/verdict.js';

/** The name istiod gives the DENY policy it sends for an effective STRICT mode. */
export const STATIC_STRICT_POLICY_NAME = 'istio_converted_static_strict';
/** The prefix of the per-workload DENY policy istiod makes from port-level modes. */
export const CONVERTED_PEER_AUTHENTICATION_PREFIX = 'converted_peer_authentication_';

/** Port-level mTLS keys are 1-65535, so port 0 always resolves to the workload's port-independent mode. */
const NO_PORT_LEVEL = 0;

export interface StrictMtls {
  /** The mode of every port without a port-level override. */
  readonly defaultMode: EffectiveMtlsMode;
  /** Ports whose port-level mode makes them differ from `defaultMode` in requiring an identity. */
  readonly exceptionPorts: ReadonlySet<number>;
  /** What a plaintext connection to a STRICT port gets. */
  readonly verdict: DeniedByPeerAuthentication;
}

export function compileStrictMtls(levels: PeerAuthenticationLevels, rootNamespace: string): StrictMtls {
  const defaultMode = effectiveMtlsMode(levels, NO_PORT_LEVEL);
  const strictByDefault = defaultMode === 'STRICT';
  const exceptionPorts = new Set<number>();
  for (const { port } of levels.workload?.portLevelMtls ?? []) {
    if ((effectiveMtlsMode(levels, port) === 'STRICT') !== strictByDefault) exceptionPorts.add(port);
  }
  // istiod names the denial after the workload policy when its port-level modes carve exceptions out of
  // the default, and after the static STRICT policy otherwise.
  const workload = levels.workload;
  const policy =
    workload !== undefined && exceptionPorts.size > 0
      ? `${workload.namespace}/${CONVERTED_PEER_AUTHENTICATION_PREFIX}${workload.name}`
      : `${rootNamespace}/${STATIC_STRICT_POLICY_NAME}`;
  return Object.freeze({ defaultMode, exceptionPorts, verdict: deniedByPeerAuthentication(policy) });
}

/** Whether a connection to `port` must carry a peer identity. */
export function requiresPeerIdentity(strict: StrictMtls, port: number): boolean {
  return (strict.defaultMode === 'STRICT') !== strict.exceptionPorts.has(port);
}
