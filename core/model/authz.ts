// AuthorizationPolicy records (security.istio.io/v1 and v1beta1), validated and typed. Matching
// semantics live with the enforcers (agent L4, waypoint L7); this file holds the shape and which
// workloads a policy applies to. See /work/shared/reference/authz.md.
import type { Cidr } from './ip.js';
import { labelsMatch, type Labels } from './labels.js';
import type { Workload } from './workload.js';

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
export const AUTHORIZATION_ACTIONS: readonly AuthorizationAction[] = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'];

/** The annotation that makes a policy evaluate-and-log only. */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

export interface PolicyTargetRef {
  /** "" for core kinds (Service); gateway.networking.k8s.io for Gateway and GatewayClass. */
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  /** As written; a namespace other than the policy's never binds. */
  readonly namespace: string | undefined;
}

/**
 * How a policy picks what it governs; at most one of selector/targetRef(s) may be set.
 * - `namespace`: no selector and no targetRefs: every workload of the namespace (of the mesh in the root namespace).
 * - `selector`: workloads whose labels match, in the namespace (in every namespace from the root namespace).
 * - `targetRefs`: a Gateway, GatewayClass, Service or ServiceEntry; enforced by waypoints only.
 */
export type PolicyAttachment =
  | { readonly type: 'namespace' }
  | { readonly type: 'selector'; readonly matchLabels: Labels }
  | { readonly type: 'targetRefs'; readonly targetRefs: readonly PolicyTargetRef[] };

/** rules[].from[].source. Every list is empty when absent; a negative list holds when none of its values match. */
export interface PolicySource {
  readonly principals: readonly string[];
  readonly notPrincipals: readonly string[];
  readonly requestPrincipals: readonly string[];
  readonly notRequestPrincipals: readonly string[];
  readonly namespaces: readonly string[];
  readonly notNamespaces: readonly string[];
  /** `ns/sa`, or a bare `sa` already expanded to the policy's namespace. */
  readonly serviceAccounts: readonly string[];
  readonly notServiceAccounts: readonly string[];
  readonly ipBlocks: readonly Cidr[];
  readonly notIpBlocks: readonly Cidr[];
  readonly remoteIpBlocks: readonly Cidr[];
  readonly notRemoteIpBlocks: readonly Cidr[];
}

/** rules[].to[].operation. Ports are the destination workload (container) port. */
export interface PolicyOperation {
  readonly hosts: readonly string[];
  readonly notHosts: readonly string[];
  readonly ports: readonly number[];
  readonly notPorts: readonly number[];
  readonly methods: readonly string[];
  readonly notMethods: readonly string[];
  readonly paths: readonly string[];
  readonly notPaths: readonly string[];
}

/** The attribute a `when` condition reads; `request.headers` and `request.auth.claims` carry an argument. */
export type ConditionAttribute =
  | 'request.headers'
  | 'source.ip'
  | 'remote.ip'
  | 'source.namespace'
  | 'source.principal'
  | 'source.serviceAccount'
  | 'source.trustDomain'
  | 'request.auth.principal'
  | 'request.auth.audiences'
  | 'request.auth.presenter'
  | 'request.auth.claims'
  | 'destination.ip'
  | 'destination.port'
  | 'connection.sni'
  | 'experimental';

/** Attributes the node agent can evaluate; every other one is L7 (see authz.md §5). */
export const L4_CONDITION_ATTRIBUTES: ReadonlySet<ConditionAttribute> = new Set<ConditionAttribute>([
  'source.ip',
  'source.namespace',
  'source.principal',
  'destination.ip',
  'destination.port',
]);

export interface PolicyCondition {
  /** The key as written, e.g. `request.headers[x-user]`, for messages and `explain`. */
  readonly key: string;
  readonly attribute: ConditionAttribute;
  /** The header name for `request.headers[...]`; the claim path for `request.auth.claims[a][b]`. */
  readonly argument: readonly string[];
  readonly values: readonly string[];
  readonly notValues: readonly string[];
}

/**
 * One rule: `from`, `to` and `when` are ANDed; an empty list imposes no constraint (a present-but-empty
 * `from: []`/`to: []` is rejected at conversion, so empty here always means "absent").
 */
export interface AuthorizationRule {
  readonly from: readonly PolicySource[];
  readonly to: readonly PolicyOperation[];
  readonly when: readonly PolicyCondition[];
}

export interface AuthorizationPolicy {
  readonly kind: 'AuthorizationPolicy';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly createdAtMs: number | undefined;
  readonly attachment: PolicyAttachment;
  /** Defaults to ALLOW. */
  readonly action: AuthorizationAction;
  /** spec.provider.name; set exactly when action is CUSTOM. */
  readonly provider: string | undefined;
  /**
   * The distinction between `[]` and `[{}]` is kept: an ALLOW with no rules matches nothing (so it
   * denies all in its scope unless another ALLOW matches); an ALLOW with `[{}]` allows everything.
   */
  readonly rules: readonly AuthorizationRule[];
  /** `istio.io/dry-run: "true"`: evaluate and log only, never enforce. */
  readonly dryRun: boolean;
}

/**
 * Whether the node agent applies this policy to `workload`: namespace-wide and selector policies of
 * the workload's namespace, and of the root namespace for every workload. targetRefs policies are
 * for waypoints and never apply here (authz.md §4).
 */
export function policyAppliesToWorkload(
  policy: AuthorizationPolicy,
  workload: Workload,
  rootNamespace: string,
): boolean {
  if (policy.namespace !== workload.namespace && policy.namespace !== rootNamespace) return false;
  switch (policy.attachment.type) {
    case 'namespace':
      return true;
    case 'selector':
      return labelsMatch(policy.attachment.matchLabels, workload.labels);
    case 'targetRefs':
      return false;
  }
}
