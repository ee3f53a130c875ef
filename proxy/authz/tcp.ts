// AuthorizationPolicy for raw TCP through the waypoint (authz.md §6.5, Envoy's network RBAC filter as
// Istio builds it): an ALLOW rule that uses any HTTP-only field is skipped; in DENY, AUDIT and CUSTOM
// rules the HTTP-only fields are dropped, so `DENY to: [{methods: [POST]}]` refuses every TCP
// connection in its scope. The result is again a policy, compiled and evaluated by the same engine
// with no HTTP attributes; views are cached per policy object, so the policy cache's "same objects"
// test keeps working across config versions.
import type {
  AuthorizationPolicy,
  AuthorizationRule,
  ConditionAttribute,
  PolicyCondition,
  PolicyOperation,
  PolicySource,
} from '../../core/model/index.js';
import type { AuthorizationPolicySource } from './binding.js';
import type { VersionedPolicySource } from './cache.js';
import { SKIPPED_RULE } from './authorization.js';
import type { WaypointRequest } from './request.js';
import type { SpiffeIdentity } from '../../core/spiffe.js';

/** What the TCP views are evaluated against: the connection's addresses and peer, no HTTP attributes. */
export function tcpConnectionRequest(
  srcIp: string,
  srcIdentity: SpiffeIdentity,
  dstIp: string,
  dstPort: number,
): WaypointRequest {
  return {
    srcIp,
    srcIdentity,
    dstIp,
    dstPort,
    method: '',
    path: '',
    query: '',
    host: undefined,
    rawHeaders: [],
    sni: undefined,
  };
}

/** `when` attributes a TCP connection has (everything from the peer certificate and the addresses). */
const TCP_ATTRIBUTES: ReadonlySet<ConditionAttribute> = new Set<ConditionAttribute>([
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'destination.ip',
  'destination.port',
  'connection.sni',
]);

function sourceUsesHttp(s: PolicySource): boolean {
  return s.requestPrincipals.length > 0 || s.notRequestPrincipals.length > 0;
}

function operationUsesHttp(o: PolicyOperation): boolean {
  return (
    o.hosts.length > 0 ||
    o.notHosts.length > 0 ||
    o.methods.length > 0 ||
    o.notMethods.length > 0 ||
    o.paths.length > 0 ||
    o.notPaths.length > 0
  );
}

const conditionIsTcp = (c: PolicyCondition): boolean => TCP_ATTRIBUTES.has(c.attribute);

export function ruleUsesHttp(rule: AuthorizationRule): boolean {
  return (
    rule.from.some(sourceUsesHttp) || rule.to.some(operationUsesHttp) || !rule.when.every(conditionIsTcp)
  );
}

function withoutHttp(rule: AuthorizationRule): AuthorizationRule {
  return {
    from: rule.from.map((s) =>
      sourceUsesHttp(s) ? { ...s, requestPrincipals: [], notRequestPrincipals: [] } : s,
    ),
    to: rule.to.map((o) =>
      operationUsesHttp(o)
        ? { ...o, hosts: [], notHosts: [], methods: [], notMethods: [], paths: [], notPaths: [] }
        : o,
    ),
    when: rule.when.filter(conditionIsTcp),
  };
}

const views = new WeakMap<AuthorizationPolicy, AuthorizationPolicy>();

/** The policy as the TCP filter chain enforces it. */
export function tcpView(policy: AuthorizationPolicy): AuthorizationPolicy {
  let view = views.get(policy);
  if (view) return view;
  if (!policy.rules.some(ruleUsesHttp)) view = policy;
  // Skipped in place, not filtered out: the rules after keep their index, which verdicts report.
  else if (policy.action === 'ALLOW')
    view = { ...policy, rules: policy.rules.map((r) => (ruleUsesHttp(r) ? SKIPPED_RULE : r)) };
  else view = { ...policy, rules: policy.rules.map((r) => (ruleUsesHttp(r) ? withoutHttp(r) : r)) };
  views.set(policy, view);
  return view;
}

/** A policy source whose policies are their TCP views (for a second WaypointPolicyCache). */
export function tcpPolicySource<S extends AuthorizationPolicySource & VersionedPolicySource>(
  source: S,
): VersionedPolicySource {
  return {
    get version() {
      return source.version;
    },
    get rootNamespace() {
      return source.rootNamespace;
    },
    authorizationPolicies: (namespace: string) => source.authorizationPolicies(namespace).map(tcpView),
  };
}
