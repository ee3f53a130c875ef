// Which destinations a waypoint serves: a CONNECT is accepted only for an address whose traffic is bound
// to this very waypoint (a Service VIP and one of its TCP ports, or a pod addressed directly when the
// waypoint serves workloads). Anything else is refused before a byte is read, so a mesh certificate does
// not make the waypoint an open relay into other namespaces.
import type { ConfigStore } from '../../core/store.js';
import type { Service, ServicePort } from '../../core/model/service.js';
import { isTerminated, type Workload } from '../../core/model/workload.js';
import { parseHboneAuthority } from '../../core/hbone/authority.js';
import { serviceWaypoint, workloadWaypoint, type WaypointBinding } from '../../core/waypoints.js';
import type { NamespacedName } from '../authz/index.js';

export interface DialledAddress {
  readonly ip: string;
  readonly port: number;
}

export type TunnelTarget =
  /** Service-addressed: the client dialled `service`'s VIP on `port`. */
  | {
      readonly kind: 'service';
      readonly dialled: DialledAddress;
      readonly service: Service;
      readonly port: ServicePort;
    }
  /** Workload-addressed: the client dialled the pod itself. */
  | { readonly kind: 'workload'; readonly dialled: DialledAddress; readonly workload: Workload };

export type TargetDecision =
  TunnelTarget | { readonly kind: 'refuse'; readonly status: 400 | 503; readonly reason: string };

function boundHere(binding: WaypointBinding, waypoint: NamespacedName): boolean {
  return (
    binding.kind === 'waypoint' &&
    binding.gateway.name === waypoint.name &&
    binding.gateway.namespace === waypoint.namespace
  );
}

/** What the CONNECT `authority` names, if this waypoint serves it. Pure. */
export function resolveTunnelTarget(
  store: ConfigStore,
  waypoint: NamespacedName,
  authority: string | undefined,
): TargetDecision {
  const dialled = parseHboneAuthority(authority);
  if (!dialled)
    return {
      kind: 'refuse',
      status: 400,
      reason: `CONNECT authority ${JSON.stringify(authority)} is not ip:port`,
    };
  const service = store.serviceByVip(dialled.ip);
  if (service) {
    const port = service.ports.find((p) => p.port === dialled.port && p.protocol === 'TCP');
    if (!port)
      return {
        kind: 'refuse',
        status: 400,
        reason: `service ${service.namespace}/${service.name} has no TCP port ${dialled.port}`,
      };
    if (!boundHere(serviceWaypoint(store, service), waypoint))
      return {
        kind: 'refuse',
        status: 400,
        reason: `service ${service.namespace}/${service.name} is not bound to waypoint ${waypoint.namespace}/${waypoint.name}`,
      };
    return { kind: 'service', dialled, service, port };
  }
  const workload = store.workloadByIp(dialled.ip);
  if (workload && !isTerminated(workload)) {
    if (!boundHere(workloadWaypoint(store, workload), waypoint))
      return {
        kind: 'refuse',
        status: 400,
        reason: `pod ${workload.namespace}/${workload.name} is not bound to waypoint ${waypoint.namespace}/${waypoint.name}`,
      };
    return { kind: 'workload', dialled, workload };
  }
  return {
    kind: 'refuse',
    status: 400,
    reason: `${dialled.ip} is neither a Service VIP nor a pod of the mesh`,
  };
}
