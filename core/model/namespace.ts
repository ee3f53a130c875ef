// Namespace records. Enrolment in the ambient mesh is decided by a namespace label (see workload.ts).
import type { Labels } from './labels.js';

/** The namespace label that enrols its pods in the mesh (`ambient`); Istio's own name. */
export const DATAPLANE_MODE_LABEL = 'istio.io/dataplane-mode';
export const DATAPLANE_MODE_AMBIENT = 'ambient';
/** A pod or namespace with this dataplane mode is never captured. */
export const DATAPLANE_MODE_NONE = 'none';
/** Binds a namespace or Service to a waypoint Gateway by name. */
export const USE_WAYPOINT_LABEL = 'istio.io/use-waypoint';

export interface Namespace {
  readonly kind: 'Namespace';
  readonly name: string;
  readonly labels: Labels;
}
