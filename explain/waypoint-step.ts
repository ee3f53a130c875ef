// The waypoint's part of a flow, with the waypoint's own pieces in the order its request pipeline
// (proxy/server/request-handler.ts `decide`) and TCP path (proxy/server/tcp-forward.ts) use them: which
// destination the tunnel is for (resolveTunnelTarget), HTTP or TCP (declaredProtocol), path
// normalization, the bound policies (WaypointPolicyCache, over the TCP views for TCP) and evaluateRequest,
// then the HTTPRoute plan (compileRoutingTable, planRequest) and the endpoints (endpointsOf). The listing
// of policies is traceRequest over the same compiled set and request.
import type { WaypointVerdict } from '../proxy/authz/verdict.js';
import {
  WaypointPolicyCache,
  evaluateRequest,
  selectWaypointPolicies,
  waypointBinding,
  type CompiledWaypointPolicy,
  type WaypointRequest,
  type WaypointTarget,
} from '../proxy/authz/index.js';
import { traceRequest, type RequestAuthorizationTrace } from '../proxy/authz/evaluate.js';
import { tcpConnectionRequest, tcpPolicySource } from '../proxy/authz/tcp.js';
import type { Endpoint } from '../proxy/forward/connector.js';
import { normalizeRequestTarget } from '../proxy/http/normalize.js';
import {
  compileRoutingTable,
  planRequest,
  type MatchedRoute,
  type RequestHeaders,
  type RequestPlan,
} from '../proxy/routing/index.js';
import { endpointsOf } from '../proxy/server/request-handler.js';
import { declaredProtocol } from '../proxy/tunnel/protocol.js';
import { resolveTunnelTarget, type TunnelTarget } from '../proxy/tunnel/targets.js';
import { parseHboneAuthority } from '../core/hbone/authority.js';
import type { BackendObjectRef } from '../core/model/route.js';
import { serviceFqdn } from '../core/model/service.js';
import type { Workload } from '../core/model/workload.js';
import { formatSpiffeId, type SpiffeIdentity } from '../core/spiffe.js';
import type { ConfigStore } from '../core/store.js';
import type {
  ExplainedEndpoint,
  NamespacedName,
  PolicyEvaluation,
  RouteExplanation,
  WaypointRequestView,
  WaypointStep,
} from './explanation.js';
import type { ExplainHttp } from './query.js';

/** The tunnel the source agent opens to a waypoint. */
export interface WaypointHop {
  readonly waypoint: NamespacedName;
  readonly pod: Workload | undefined;
  /** The SPIFFE ID the source agent expects of it. */
  readonly identity: string;
  /** The CONNECT authority: the address the client dialled. */
  readonly authority: string;
  /** The client, as the waypoint restores it from the tunnel. */
  readonly client: { readonly ip: string; readonly identity: SpiffeIdentity };
}

export interface WaypointOutcome {
  readonly step: WaypointStep;
  /** Where the waypoint sends the flow next; undefined when it ends here. */
  readonly upstream: Endpoint | undefined;
  /** How many endpoints the waypoint chooses among (one is explained). */
  readonly candidates: number;
  /** The request explained, with defaults filled in; undefined for TCP. */
  readonly http: { readonly method: string; readonly path: string; readonly host: string } | undefined;
}

/** A step's fields after the waypoint's own. */
type StepFields = Omit<WaypointStep, 'at' | 'waypoint' | 'pod' | 'identity'>;

export function waypointStep(
  store: ConfigStore,
  hop: WaypointHop,
  http: ExplainHttp | undefined,
  endpointIndex: number,
  isMeshWorkload: (w: Workload) => boolean,
): WaypointOutcome {
  // The verdict first after the waypoint's own fields, for people reading the JSON.
  const step = ({ verdict, ...fields }: StepFields): WaypointStep => ({
    at: 'waypoint',
    waypoint: hop.waypoint,
    ...(hop.pod !== undefined && { pod: `${hop.pod.namespace}/${hop.pod.name}` }),
    identity: hop.identity,
    verdict,
    ...fields,
  });
  const ends = (fields: StepFields, explained?: WaypointOutcome['http']): WaypointOutcome => ({
    step: step(fields),
    upstream: undefined,
    candidates: 0,
    http: explained,
  });
  const client = { srcIp: hop.client.ip, srcIdentity: formatSpiffeId(hop.client.identity) };
  const target = resolveTunnelTarget(store, hop.waypoint, hop.authority);
  if (target.kind === 'refuse') {
    const addressed = parseHboneAuthority(hop.authority);
    return ends({
      verdict: 'ERROR',
      reason: `refused with ${target.status}: ${target.reason}`,
      protocol: 'tcp',
      protocolReason: 'the tunnel is refused before any byte is read',
      request: { ...client, dstIp: addressed?.ip ?? hop.authority, dstPort: addressed?.port ?? 0 },
      policies: [],
      audit: [],
      dryRun: [],
    });
  }
  const bound: WaypointTarget = {
    waypoint: hop.waypoint,
    service:
      target.kind === 'service'
        ? { namespace: target.service.namespace, name: target.service.name }
        : undefined,
  };
  const protocol = protocolOf(target, http !== undefined);
  const dialled = { dstIp: target.dialled.ip, dstPort: target.dialled.port };
  /** The endpoints of what was dialled: the pod itself, or the Service port's. */
  const dialledEndpoints = (): readonly Endpoint[] =>
    target.kind === 'workload'
      ? [{ ip: target.dialled.ip, port: target.dialled.port, workload: target.workload }]
      : endpointsOf(store, target.service, target.port);

  if (protocol.kind === 'tcp') {
    // proxy/server/tcp-forward.ts: the TCP views of the bound policies, no HTTP attributes.
    const request = tcpConnectionRequest(hop.client.ip, hop.client.identity, dialled.dstIp, dialled.dstPort);
    const decided = authorize(
      store,
      bound,
      new WaypointPolicyCache(tcpPolicySource(store)).get(bound),
      request,
    );
    const fields = {
      protocol: 'tcp' as const,
      protocolReason: protocol.reason,
      request: { ...client, ...dialled },
    };
    if (!decided.verdict.allowed) return ends({ ...fields, ...decided.fields, verdict: 'DENIED' });
    return onward(step, { ...fields, ...decided.fields }, dialledEndpoints(), endpointIndex, isMeshWorkload);
  }

  // proxy/server/request-handler.ts decide(): normalize, authorize, route.
  const method = http?.method ?? 'GET';
  const requestTarget = http?.path ?? '/';
  const headers = http?.headers ?? [];
  const hostHeader = headers.find(([name]) => name.toLowerCase() === 'host')?.[1];
  const host =
    http?.host ??
    hostHeader ??
    (target.kind === 'service' ? serviceFqdn(target.service, store.clusterDomain) : hop.authority);
  const explained = { method, path: requestTarget, host };
  const others = headers.filter(([name]) => name.toLowerCase() !== 'host');
  const view: WaypointRequestView = {
    ...client,
    ...dialled,
    method,
    host,
    ...(others.length > 0 && { headers: others }),
  };
  const normalized = normalizeRequestTarget(requestTarget);
  if (!normalized.ok) {
    return ends(
      {
        verdict: 'ERROR',
        reason: `answered ${normalized.status} by the waypoint: ${normalized.reason}`,
        protocol: 'http',
        protocolReason: protocol.reason,
        request: { ...view, path: requestTarget },
        policies: [],
        audit: [],
        dryRun: [],
        status: normalized.status,
      },
      explained,
    );
  }
  const request: WaypointRequest = {
    srcIp: hop.client.ip,
    srcIdentity: hop.client.identity,
    ...dialled,
    method,
    path: normalized.path,
    query: normalized.query,
    host,
    rawHeaders: ['host', host, ...others.flat()],
    sni: undefined,
  };
  const decided = authorize(store, bound, new WaypointPolicyCache(store).get(bound), request);
  const fields = {
    protocol: 'http' as const,
    protocolReason: protocol.reason,
    request: { ...view, path: normalized.path, ...(normalized.query !== '' && { query: normalized.query }) },
    ...decided.fields,
  };
  if (!decided.verdict.allowed) return ends({ ...fields, verdict: 'DENIED', status: 403 }, explained);

  const plan = planRequest(
    compileRoutingTable(store, hop.waypoint),
    {
      dialled: target.dialled,
      clientNamespace: hop.client.identity.namespace,
      method,
      path: normalized.path,
      query: normalized.query,
      headers: routeHeaders(host, others),
    },
    // The first weighted backend, deterministically (the waypoint draws at random).
    { random: () => 0 },
  );
  const route = plan.kind === 'passthrough' ? undefined : routeView(plan.selection, plan);
  const routed = route === undefined ? fields : { ...fields, route };
  if (plan.kind === 'respond') {
    // The waypoint's own answer; a missing route or endpoint is an error flag on its flow event
    // (request-handler.ts #destination), a redirect or a CORS preflight is not.
    const failed = plan.cause === 'not-found' || plan.cause === 'no-ready-endpoints';
    return ends(
      {
        ...routed,
        verdict: failed ? 'ERROR' : 'ALLOWED',
        reason: `answered ${plan.status} by the waypoint: ${plan.message}`,
        status: plan.status,
      },
      explained,
    );
  }
  const endpoints =
    plan.kind === 'forward'
      ? endpointsOf(store, plan.backend.backend.service, plan.backend.backend.port)
      : dialledEndpoints();
  return { ...onward(step, routed, endpoints, endpointIndex, isMeshWorkload), http: explained };
}

/** What authorizing gave: the step's verdict fields and policy listing. */
interface Authorized {
  readonly verdict: WaypointVerdict;
  readonly fields: Pick<
    WaypointStep,
    'policy' | 'rule' | 'reason' | 'policies' | 'audit' | 'dryRun' | 'responseDetails'
  >;
}

/** The data plane's verdict, and the bound policies in evaluation order from the trace of it. */
function authorize(
  store: ConfigStore,
  target: WaypointTarget,
  compiled: CompiledWaypointPolicy,
  request: WaypointRequest,
): Authorized {
  const verdict = evaluateRequest(compiled, request);
  const trace = traceRequest(compiled, request);
  return {
    verdict,
    fields: {
      ...(verdict.policy !== undefined && { policy: verdict.policy }),
      ...(verdict.rule !== undefined && { rule: verdict.rule }),
      reason: verdict.message,
      policies: policyEvaluations(store, target, trace, verdict),
      audit: verdict.audit,
      dryRun: verdict.dryRun,
      ...(verdict.responseDetails !== undefined && { responseDetails: verdict.responseDetails }),
    },
  };
}

/** An allowed flow goes on to one endpoint (or fails for want of one, as the waypoint answers 503). */
function onward(
  step: (fields: StepFields) => WaypointStep,
  fields: Omit<StepFields, 'verdict'>,
  endpoints: readonly Endpoint[],
  index: number,
  isMeshWorkload: (w: Workload) => boolean,
): WaypointOutcome {
  const upstream = endpoints[Math.min(index, endpoints.length - 1)];
  if (upstream === undefined)
    return {
      step: step({ ...fields, verdict: 'ERROR', reason: 'no healthy upstream', status: 503 }),
      upstream: undefined,
      candidates: 0,
      http: undefined,
    };
  return {
    step: step({ ...fields, verdict: 'ALLOWED', upstream: endpointView(upstream, isMeshWorkload) }),
    upstream,
    candidates: endpoints.length,
    http: undefined,
  };
}

function policyEvaluations(
  store: ConfigStore,
  target: WaypointTarget,
  trace: RequestAuthorizationTrace,
  verdict: WaypointVerdict,
): PolicyEvaluation[] {
  const attachedVia = new Map<string, string>();
  for (const policy of selectWaypointPolicies(store, target)) {
    const binding = waypointBinding(policy, target, store.rootNamespace);
    if (binding.bound) attachedVia.set(`${policy.namespace}/${policy.name}`, binding.via);
  }
  const all = [...trace.custom, ...trace.deny, ...trace.allow, ...trace.audit, ...trace.dryRun];
  return all.map((p) => {
    const via = attachedVia.get(p.policy);
    return {
      policy: p.policy,
      action: p.action,
      dryRun: p.dryRun,
      matched: p.matchedRule !== undefined,
      ...(p.matchedRule !== undefined && { rule: p.matchedRule }),
      decides:
        !p.dryRun &&
        p.action !== 'AUDIT' &&
        verdict.rule !== undefined &&
        p.policy === verdict.policy &&
        p.matchedRule === verdict.rule,
      ...(via !== undefined && { attachedVia: via }),
      warnings: trace.warnings.filter((w) => w.policy === p.policy).map((w) => w.message),
    };
  });
}

function protocolOf(
  target: TunnelTarget,
  requestGiven: boolean,
): { readonly kind: 'http' | 'tcp'; readonly reason: string } {
  const port = target.kind === 'service' ? target.port : undefined;
  const declared = declaredProtocol(port);
  const named =
    port === undefined
      ? 'a pod addressed directly'
      : `Service port ${port.name ?? port.port}${port.appProtocol ? ` (appProtocol ${port.appProtocol})` : ''}`;
  if (declared.kind === 'tcp') return { kind: 'tcp', reason: `${named} declares an opaque protocol: TCP` };
  if (declared.kind === 'http') return { kind: 'http', reason: `${named} declares HTTP` };
  return requestGiven
    ? { kind: 'http', reason: `${named} declares no protocol: detected; explained as the HTTP request given` }
    : {
        kind: 'tcp',
        reason: `${named} declares no protocol: detected; explained as TCP (give a method or path for HTTP)`,
      };
}

/** Headers as the routing engine reads them: lower-case names, repeated fields as lists. */
function routeHeaders(host: string, headers: readonly (readonly [string, string])[]): RequestHeaders {
  const out: Record<string, string | string[]> = { host };
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase();
    const seen = out[name];
    out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return out;
}

function routeView(selection: MatchedRoute | undefined, plan: RequestPlan): RouteExplanation | undefined {
  if (selection === undefined) return undefined;
  const { rule, route } = selection;
  const backends = rule.backends.choices.map((choice) =>
    choice.kind === 'forward'
      ? { backend: refName(choice.ref), weight: choice.ref.weight }
      : {
          backend: choice.ref === undefined ? '(none)' : refName(choice.ref),
          weight: choice.ref?.weight ?? 0,
          problem: choice.message,
        },
  );
  return {
    rule: rule.id,
    route: `${route.namespace}/${route.name}`,
    ruleIndex: rule.index,
    ...(plan.kind === 'forward' && { backend: refName(plan.backend.ref) }),
    backends,
    ...(plan.kind === 'forward' && plan.edits.path !== undefined && { rewrittenPath: plan.edits.path }),
  };
}

function refName(ref: BackendObjectRef): string {
  return `${ref.namespace}/${ref.name}${ref.port === undefined ? '' : `:${ref.port}`}`;
}

function endpointView(ep: Endpoint, isMeshWorkload: (w: Workload) => boolean): ExplainedEndpoint {
  return {
    ip: ep.ip,
    port: ep.port,
    ...(ep.workload && { namespace: ep.workload.namespace, pod: ep.workload.name }),
    inMesh: ep.workload !== undefined && isMeshWorkload(ep.workload),
  };
}
