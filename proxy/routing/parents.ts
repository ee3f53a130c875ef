// Which parentRefs of a route this waypoint serves, and whether they attach (gateway-api.md §10, §11):
// - a Service parent (group "", kind Service) whose Service is bound to this waypoint by
//   istio.io/use-waypoint (its own label, else its namespace's); `port` / `sectionName` narrow it to
//   Service ports;
// - the waypoint Gateway itself, narrowed by listener `sectionName` / `port`.
// Any other parentRef belongs to someone else and gets no status from us.
import { isWaypoint, type Gateway } from '../../core/model/gateway.js';
import {
  GATEWAY_API_GROUP,
  USE_WAYPOINT_LABEL,
  isServiceParent,
  type HttpRoute,
  type ParentRef,
  type Service,
  type ServicePort,
} from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
// The binding rule is the agent's (it decides which traffic reaches the waypoint); both must agree, so
// it is imported rather than restated. It belongs in core/ once that can change.
import { serviceWaypoint } from '../../core/waypoints.js';
import { intersectHostnames } from './hostnames.js';

/** A waypoint: the namespace and name of its Gateway. */
export interface WaypointRef {
  readonly namespace: string;
  readonly name: string;
}

/** Accepted=False reasons for a parent (apis/v1 RouteConditionReason). */
export type ParentRejectionReason =
  'NoMatchingParent' | 'NotAllowedByListeners' | 'NoMatchingListenerHostname';

export type ParentAttachment =
  /** Mesh: the route applies to traffic dialled to `ports` of the Service's cluster IPs. */
  | { readonly kind: 'service'; readonly service: Service; readonly ports: readonly ServicePort[] }
  /** The waypoint Gateway: the route applies by Host to `hostnames` (ANY_HOST for any). */
  | { readonly kind: 'gateway'; readonly gateway: Gateway; readonly hostnames: readonly string[] }
  | { readonly kind: 'rejected'; readonly reason: ParentRejectionReason; readonly message: string };

/** HTTPRoute may attach to these listener protocols; HBONE is the waypoint's own listener. */
const HTTP_LISTENER_PROTOCOLS = new Set(['HTTP', 'HTTPS', 'HBONE']);

/** How `ref` (entry `index` of `route.parentRefs`) attaches to the waypoint; undefined if it names another parent. */
export function attachParent(
  store: ConfigStore,
  waypoint: WaypointRef,
  route: HttpRoute,
  ref: ParentRef,
  index: number,
): ParentAttachment | undefined {
  if (isServiceParent(ref)) return attachService(store, waypoint, ref, index);
  if (ref.group === GATEWAY_API_GROUP && ref.kind === 'Gateway') {
    if (ref.namespace !== waypoint.namespace || ref.name !== waypoint.name) return undefined;
    return attachGateway(store, waypoint, route, ref, index);
  }
  return undefined;
}

function rejected(reason: ParentRejectionReason, index: number, message: string): ParentAttachment {
  return { kind: 'rejected', reason, message: `spec.parentRefs[${index}]: ${message}` };
}

function attachService(
  store: ConfigStore,
  waypoint: WaypointRef,
  ref: ParentRef,
  index: number,
): ParentAttachment | undefined {
  const service = store.service(ref.namespace, ref.name);
  const target = `${ref.namespace}/${ref.name}`;
  if (service === undefined) {
    // Only a namespace bound to this waypoint makes a missing Service ours to report.
    const bound =
      ref.namespace === waypoint.namespace &&
      store.namespace(ref.namespace)?.labels[USE_WAYPOINT_LABEL] === waypoint.name;
    return bound ? rejected('NoMatchingParent', index, `Service ${target} not found`) : undefined;
  }
  const binding = serviceWaypoint(store, service);
  if (
    binding.kind !== 'waypoint' ||
    binding.gateway.namespace !== waypoint.namespace ||
    binding.gateway.name !== waypoint.name
  ) {
    return undefined;
  }
  if (service.headless || service.clusterIps.length === 0) {
    return rejected(
      'NoMatchingParent',
      index,
      `Service ${target} has no cluster IP (headless or ExternalName)`,
    );
  }
  const ports = service.ports.filter(
    (port) =>
      port.protocol === 'TCP' &&
      (ref.port === undefined || port.port === ref.port) &&
      (ref.sectionName === undefined || port.name === ref.sectionName),
  );
  if (ports.length === 0) {
    const wanted = [
      ref.port === undefined ? undefined : `port ${ref.port}`,
      ref.sectionName === undefined ? undefined : `port name ${JSON.stringify(ref.sectionName)}`,
    ]
      .filter((part) => part !== undefined)
      .join(' and ');
    return rejected('NoMatchingParent', index, `Service ${target} has no TCP ${wanted || 'port'}`);
  }
  return { kind: 'service', service, ports };
}

function attachGateway(
  store: ConfigStore,
  waypoint: WaypointRef,
  route: HttpRoute,
  ref: ParentRef,
  index: number,
): ParentAttachment | undefined {
  const gateway = store.gateway(waypoint.namespace, waypoint.name);
  if (gateway === undefined || !isWaypoint(gateway)) return undefined;
  const listeners = gateway.listeners.filter(
    (listener) =>
      (ref.sectionName === undefined || listener.name === ref.sectionName) &&
      (ref.port === undefined || listener.port === ref.port),
  );
  if (listeners.length === 0) {
    return rejected(
      'NoMatchingParent',
      index,
      'no listener of the waypoint matches its sectionName and port',
    );
  }
  // allowedRoutes is not modelled yet, so every listener has the default: HTTPRoutes from its own namespace.
  if (route.namespace !== gateway.namespace) {
    return rejected(
      'NotAllowedByListeners',
      index,
      `routes from namespace ${route.namespace} are not allowed (listeners allow their own namespace only)`,
    );
  }
  const allowed = listeners.filter((listener) => HTTP_LISTENER_PROTOCOLS.has(listener.protocol));
  if (allowed.length === 0) {
    return rejected('NotAllowedByListeners', index, 'no matching listener accepts HTTPRoute (protocol)');
  }
  const hostnames = new Set<string>();
  for (const listener of allowed) {
    for (const hostname of intersectHostnames(listener.hostname, route.hostnames)) hostnames.add(hostname);
  }
  if (hostnames.size === 0) {
    return rejected('NoMatchingListenerHostname', index, 'no route hostname intersects a listener hostname');
  }
  return { kind: 'gateway', gateway, hostnames: [...hostnames] };
}
