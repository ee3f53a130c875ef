// PeerAuthentication records (security.istio.io/v1) and the mTLS mode they resolve to for one port.
import type { Labels } from './labels.js';

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';
export const MTLS_MODES: readonly MtlsMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

/** A resolved mode; UNSET never survives resolution. */
export type EffectiveMtlsMode = Exclude<MtlsMode, 'UNSET'>;

/** Istio's default when no level sets a mode. */
export const DEFAULT_MTLS_MODE: EffectiveMtlsMode = 'PERMISSIVE';

export interface PortMtls {
  /** The workload (container) port, not the Service port. */
  readonly port: number;
  readonly mode: MtlsMode;
}

export interface PeerAuthentication {
  readonly kind: 'PeerAuthentication';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly createdAtMs: number | undefined;
  /** selector.matchLabels; undefined (or empty) for a namespace- or mesh-wide policy. */
  readonly selector: Labels | undefined;
  /** mtls.mode; UNSET (inherit) when absent. */
  readonly mode: MtlsMode;
  /** Sorted by port; only allowed with a non-empty selector. */
  readonly portLevelMtls: readonly PortMtls[];
}

/**
 * The PeerAuthentications that govern one workload, one per level (the oldest wins within a level).
 * Mesh: root namespace, no selector. Namespace: the workload's namespace, no selector. Workload:
 * a matching selector in the workload's namespace (a selector policy in the root namespace is ignored).
 */
export interface PeerAuthenticationLevels {
  readonly mesh: PeerAuthentication | undefined;
  readonly namespace: PeerAuthentication | undefined;
  readonly workload: PeerAuthentication | undefined;
}

/**
 * The mode for a connection to `port`: port level, then workload, then namespace, then mesh, then
 * PERMISSIVE; UNSET at any level inherits from the next. In ambient, DISABLE behaves like PERMISSIVE
 * (HBONE mTLS cannot be switched off) but is returned as written so callers can report it.
 */
export function effectiveMtlsMode(levels: PeerAuthenticationLevels, port: number): EffectiveMtlsMode {
  const portMode = levels.workload?.portLevelMtls.find((entry) => entry.port === port)?.mode;
  for (const mode of [portMode, levels.workload?.mode, levels.namespace?.mode, levels.mesh?.mode]) {
    if (mode !== undefined && mode !== 'UNSET') return mode;
  }
  return DEFAULT_MTLS_MODE;
}
