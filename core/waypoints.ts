// Which waypoint, if any, traffic to a destination must cross, by Istio's labels and resources (shared by the
// agents, the waypoint and the CLI): a Service or namespace labelled `istio.io/use-waypoint=<gateway>` binds
// service-addressed traffic; a pod or its namespace binds workload-addressed traffic when the waypoint
// serves workloads (`istio.io/waypoint-for`).
import type { ConfigStore } from './store.js';
import { USE_WAYPOINT_LABEL } from './model/namespace.js';
import { isWaypoint, type Gateway } from './model/gateway.js';
import type { Service } from './model/service.js';
import type { Workload } from './model/workload.js';

export const WAYPOINT_FOR_LABEL = 'istio.io/waypoint-for';
/** Opts a Service or pod out of its namespace's waypoint. */
export const USE_WAYPOINT_NONE = 'none';
/** The label Istio puts on a waypoint's pods, naming their Gateway. */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';

export type WaypointFor = 'service' | 'workload' | 'all' | 'none';

export type WaypointBinding =
  | { readonly kind: 'none' }
  | { readonly kind: 'waypoint'; readonly gateway: Gateway }
  /** Bound to a waypoint that does not exist (yet): traffic must not bypass it, so it fails closed. */
  | { readonly kind: 'missing'; readonly name: string; readonly namespace: string };

/** Which traffic a waypoint serves (`istio.io/waypoint-for`; service when absent or unknown). */
export function waypointFor(gw: Gateway): WaypointFor {
  const v = gw.labels[WAYPOINT_FOR_LABEL];
  return v === 'workload' || v === 'all' || v === 'none' ? v : 'service';
}

function bindingByName(
  store: ConfigStore,
  namespace: string,
  name: string | undefined,
  addressed: 'service' | 'workload',
): WaypointBinding {
  if (!name || name === USE_WAYPOINT_NONE) return { kind: 'none' };
  const gw = store.gateway(namespace, name);
  if (!gw || !isWaypoint(gw)) return { kind: 'missing', name, namespace };
  const serves = waypointFor(gw);
  return serves === 'all' || serves === addressed ? { kind: 'waypoint', gateway: gw } : { kind: 'none' };
}

/** The waypoint for traffic addressed to `service` (its own label first, then its namespace's). */
export function serviceWaypoint(store: ConfigStore, service: Service): WaypointBinding {
  const own = service.labels[USE_WAYPOINT_LABEL];
  const name = own ?? store.namespace(service.namespace)?.labels[USE_WAYPOINT_LABEL];
  return bindingByName(store, service.namespace, name, 'service');
}

/** The waypoint for traffic addressed to the pod itself. */
export function workloadWaypoint(store: ConfigStore, w: Workload): WaypointBinding {
  // A waypoint's own pods are never bound to a waypoint: that would loop.
  if (w.labels[GATEWAY_NAME_LABEL] !== undefined) return { kind: 'none' };
  const own = w.labels[USE_WAYPOINT_LABEL];
  const name = own ?? store.namespace(w.namespace)?.labels[USE_WAYPOINT_LABEL];
  return bindingByName(store, w.namespace, name, 'workload');
}
