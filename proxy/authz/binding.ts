// Which AuthorizationPolicies a waypoint enforces for one request (authz.md §4).
//
// A waypoint enforces only policies attached with targetRefs, the union of:
// - `Gateway <waypoint>`: every request through that waypoint; the policy must be in the Gateway's
//   namespace;
// - `GatewayClass istio-waypoint`: every waypoint, and only when the policy is in the root namespace;
// - `Service <svc>`: requests for that Service; the policy must be in the Service's namespace. Traffic
//   addressed to a workload directly (no Service) is not covered (#56505).
// A targetRef whose `namespace` differs from the policy's never binds. `ServiceEntry` targets are not
// modelled (there are no ServiceEntry records), so they bind nothing here.
//
// Selector and namespace-wide policies are ignored, as Istio's waypoints ignore them: waypoints never
// use selectors, and those policies are enforced by the destination's node agent after the waypoint,
// where the source identity is the waypoint's own (the usual layering: an L4 policy on the workload
// that admits only the waypoint's service account, the L7 rules attached to the waypoint).
import {
  GATEWAY_API_GROUP,
  WAYPOINT_GATEWAY_CLASS,
  type AuthorizationPolicy,
  type PolicyTargetRef,
} from '../../core/model/index.js';

export interface NamespacedName {
  readonly namespace: string;
  readonly name: string;
}

/** What a request at a waypoint is for. */
export interface WaypointTarget {
  /** The waypoint's Gateway (class istio-waypoint). */
  readonly waypoint: NamespacedName;
  /** The destination Service, or undefined when the client addressed a workload directly. */
  readonly service: NamespacedName | undefined;
}

export type WaypointAttachment = 'Gateway' | 'GatewayClass' | 'Service';

export type WaypointBinding =
  | { readonly bound: true; readonly via: WaypointAttachment }
  | { readonly bound: false; readonly reason: string };

const NOT_TARGETREFS: WaypointBinding = Object.freeze({
  bound: false,
  reason:
    'selector and namespace-wide policies are enforced by the node agent, not the waypoint; ' +
    'attach it with targetRefs to a Gateway, GatewayClass or Service',
});

const BOUND_GATEWAY: WaypointBinding = Object.freeze({ bound: true, via: 'Gateway' });
const BOUND_GATEWAY_CLASS: WaypointBinding = Object.freeze({ bound: true, via: 'GatewayClass' });
const BOUND_SERVICE: WaypointBinding = Object.freeze({ bound: true, via: 'Service' });

/** Whether `policy` applies to requests for `target`, and through which targetRef (the first that binds). */
export function waypointBinding(
  policy: AuthorizationPolicy,
  target: WaypointTarget,
  rootNamespace: string,
): WaypointBinding {
  if (policy.attachment.type !== 'targetRefs') return NOT_TARGETREFS;
  const reasons: string[] = [];
  for (const ref of policy.attachment.targetRefs) {
    const result = refBinding(policy.namespace, ref, target, rootNamespace);
    if (result.bound) return result;
    reasons.push(result.reason);
  }
  return Object.freeze({ bound: false, reason: reasons.join('; ') });
}

function refBinding(
  policyNamespace: string,
  ref: PolicyTargetRef,
  target: WaypointTarget,
  rootNamespace: string,
): WaypointBinding {
  const described = `${ref.kind} ${ref.name}`;
  const no = (why: string): WaypointBinding =>
    Object.freeze({ bound: false, reason: `${described}: ${why}` });
  if (ref.namespace !== undefined && ref.namespace !== policyNamespace) {
    return no(`a targetRef to another namespace (${ref.namespace}) never binds`);
  }
  switch (ref.kind) {
    case 'Gateway':
      if (ref.group !== GATEWAY_API_GROUP) return no(`group ${ref.group} is not ${GATEWAY_API_GROUP}`);
      if (ref.name !== target.waypoint.name || policyNamespace !== target.waypoint.namespace) {
        return no(`not this waypoint (${target.waypoint.namespace}/${target.waypoint.name})`);
      }
      return BOUND_GATEWAY;
    case 'GatewayClass':
      if (ref.group !== GATEWAY_API_GROUP) return no(`group ${ref.group} is not ${GATEWAY_API_GROUP}`);
      if (ref.name !== WAYPOINT_GATEWAY_CLASS) return no(`only ${WAYPOINT_GATEWAY_CLASS} binds waypoints`);
      if (policyNamespace !== rootNamespace) {
        return no(`binds only from the root namespace (${rootNamespace})`);
      }
      return BOUND_GATEWAY_CLASS;
    case 'Service': {
      const service = target.service;
      if (ref.group !== '') return no(`group ${ref.group} is not the core group`);
      if (service === undefined) return no(`the request is not addressed to a Service`);
      if (ref.name !== service.name || policyNamespace !== service.namespace) {
        return no(`not the destination Service (${service.namespace}/${service.name})`);
      }
      return BOUND_SERVICE;
    }
    default:
      return no(`${ref.kind} targets are not supported by the waypoint`);
  }
}

/** What the waypoint reads policies from; `ConfigStore` is one. */
export interface AuthorizationPolicySource {
  readonly rootNamespace: string;
  /** Every AuthorizationPolicy of the namespace. */
  authorizationPolicies(namespace: string): readonly AuthorizationPolicy[];
}

/**
 * The policies that bind to `target`: those of the root namespace, then of the waypoint's namespace,
 * then of the Service's (each namespace once), each sorted by name, so the result is deterministic and
 * the same config gives the same array contents.
 */
export function selectWaypointPolicies(
  source: AuthorizationPolicySource,
  target: WaypointTarget,
): AuthorizationPolicy[] {
  const namespaces = new Set([source.rootNamespace, target.waypoint.namespace]);
  if (target.service !== undefined) namespaces.add(target.service.namespace);
  const selected: AuthorizationPolicy[] = [];
  for (const namespace of namespaces) {
    const policies = [...source.authorizationPolicies(namespace)].sort(byName);
    for (const policy of policies) {
      if (waypointBinding(policy, target, source.rootNamespace).bound) selected.push(policy);
    }
  }
  return selected;
}

function byName(a: AuthorizationPolicy, b: AuthorizationPolicy): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
