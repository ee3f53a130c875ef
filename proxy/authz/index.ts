// The waypoint's L7 AuthorizationPolicy engine: pure modules, no I/O. Per config change, the policies
// bound to a request target are selected and compiled once (`WaypointPolicyCache.get`); per request,
// `evaluateRequest` returns a shared, frozen verdict. Paths must be normalized first
// (proxy/http/normalize.ts); a denial is answered 403 `RBAC: access denied`.
//
//   binding.ts        which policies bind to a request: targetRefs to the waypoint Gateway, GatewayClass
//                     istio-waypoint (root namespace) or the destination Service; why not
//   path-match.ts     `paths` values: string forms and {*}/{**} templates
//   authorization.ts  one policy -> predicates per rule (Envoy's RBAC semantics; unknowable attributes
//                     resolved to fail closed)
//   compile.ts        the bound set -> CUSTOM/DENY/ALLOW/AUDIT/dry-run lists, warnings
//   request.ts        the request attributes and their reusable per-request form
//   evaluate.ts       the decision (§3 order), AUDIT and dry-run reports
//   verdict.ts        verdicts, the 403 body, Envoy's response details for the access log
//   cache.ts          compiled sets per target, recompiled only when the bound policies change
//
// Shared with the node agent (core/authz/): string patterns, CIDR blocks, the identity/address/port
// predicates and the rule structure, and the verdict shapes.
export {
  selectWaypointPolicies,
  waypointBinding,
  type AuthorizationPolicySource,
  type NamespacedName,
  type WaypointAttachment,
  type WaypointBinding,
  type WaypointTarget,
} from './binding.js';
export { WaypointPolicyCache, type VersionedPolicySource } from './cache.js';
export { compileWaypointPolicy, type CompiledWaypointPolicy, type PolicyWarning } from './compile.js';
export { evaluateRequest } from './evaluate.js';
export type { WaypointRequest } from './request.js';
export {
  RBAC_DENIED_BODY,
  RBAC_DENIED_STATUS,
  rbacPolicyId,
  type AuditMatch,
  type DeniedByCustom,
  type WaypointAllowed,
  type WaypointDenied,
  type WaypointVerdict,
} from './verdict.js';
