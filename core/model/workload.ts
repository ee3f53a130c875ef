// Workload records: one per Pod. The agent keys everything it does for a pod off these fields.
import type { Labels } from './labels.js';
import {
  DATAPLANE_MODE_AMBIENT,
  DATAPLANE_MODE_LABEL,
  DATAPLANE_MODE_NONE,
  type Namespace,
} from './namespace.js';

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
export const POD_PHASES: readonly PodPhase[] = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

export type PortProtocol = 'TCP' | 'UDP' | 'SCTP';
export const PORT_PROTOCOLS: readonly PortProtocol[] = ['TCP', 'UDP', 'SCTP'];

/** A port a container declares; needed to resolve a Service's named `targetPort`. */
export interface ContainerPort {
  readonly name: string | undefined;
  readonly port: number;
  readonly protocol: PortProtocol;
}

export interface Workload {
  readonly kind: 'Pod';
  /** metadata.uid, or `<namespace>/<name>` when the manifest has none (files usually do not). */
  readonly uid: string;
  readonly name: string;
  readonly namespace: string;
  /** spec.serviceAccountName, "default" when absent: the `sa` segment of the pod's SPIFFE identity. */
  readonly serviceAccount: string;
  readonly labels: Labels;
  /** status.podIPs (or status.podIP), canonical text; empty until the pod has an address. */
  readonly podIps: readonly string[];
  /** spec.nodeName; undefined while the pod is unscheduled. */
  readonly nodeName: string | undefined;
  /** A host-network pod shares its node's IP, so it is never indexed by IP nor captured. */
  readonly hostNetwork: boolean;
  /**
   * status.phase. When the manifest has no phase (hand-written files), a pod that has an IP is taken
   * to be Running and one without is Pending: an address is what a running pod has and a pending one lacks.
   */
  readonly phase: PodPhase;
  readonly containerPorts: readonly ContainerPort[];
}

/** Succeeded and Failed pods keep their record (and maybe their IP) but run nothing. */
export function isTerminated(workload: Workload): boolean {
  return workload.phase === 'Succeeded' || workload.phase === 'Failed';
}

/**
 * Whether the mesh captures this pod's traffic: its namespace is labelled ambient and the pod has not
 * opted out with `istio.io/dataplane-mode=none`. Host-network pods are never captured.
 */
export function isAmbientEnrolled(namespace: Namespace | undefined, workload: Workload): boolean {
  if (workload.hostNetwork) return false;
  if (workload.labels[DATAPLANE_MODE_LABEL] === DATAPLANE_MODE_NONE) return false;
  return namespace?.labels[DATAPLANE_MODE_LABEL] === DATAPLANE_MODE_AMBIENT;
}
