// A client whose node agent captures its traffic (an enrolled pod, or a mesh identity): the agent plans
// the connection (agent/outbound.ts planOutbound) and the plan decides the rest: refused, passed through
// (the destination is outside the mesh), tunnelled to the pod's agent, or tunnelled to a waypoint, which
// then tunnels on to the endpoint's agent with its own identity.
import { planOutbound, flowPathOf, type OutboundPlan } from '../agent/outbound.js';
import type { LocalWorkloads } from '../agent/workloads.js';
import type { FlowPath } from '../core/flows/event.js';
import { formatHboneAuthority, parseHboneAuthority } from '../core/hbone/authority.js';
import { parseSpiffeId } from '../core/spiffe.js';
import type { ConfigStore } from '../core/store.js';
import { GATEWAY_NAME_LABEL } from '../core/waypoints.js';
import { destinationAgentStep } from './destination-agent.js';
import type { ResolvedDestination } from './destination.js';
import type { ExplainStep, SourceAgentStep } from './explanation.js';
import type { ExplainHttp } from './query.js';
import type { ResolvedSource } from './source.js';
import type { Walk } from './walk.js';
import { waypointStep } from './waypoint-step.js';

/** The source's agent captures the connection and plans it; the plan decides the rest. */
export function capturedWalk(
  store: ConfigStore,
  source: ResolvedSource,
  agent: LocalWorkloads,
  destination: ResolvedDestination,
  http: ExplainHttp | undefined,
  index: number,
  trustDomain: string,
): Walk {
  const dst = { ip: destination.ip, port: destination.port };
  // The agent picks a Service endpoint or a waypoint pod at random; explain takes the first, and then
  // endpoint `index` of a Service without a waypoint (a waypoint's own endpoint choice is its step's).
  let choices = 0;
  const first = planOutbound(store, agent, dst, (n) => ((choices = n), 0));
  const path = flowPathOf(first);
  const plan =
    index === 0 || path === 'waypoint'
      ? first
      : planOutbound(store, agent, dst, (n) => Math.min(index, n - 1));
  const step = sourceAgentStep(source, plan, path);
  const notes: string[] = [];
  if (plan.kind === 'refuse') return { path, steps: [step], candidates: 0, notes };
  if (plan.kind === 'passthrough') {
    const w = plan.dstWorkload;
    return {
      path,
      steps: [step],
      endpoint: { ...plan.target, ...(w && { namespace: w.namespace, pod: w.name }), inMesh: false },
      candidates: choices,
      notes,
    };
  }
  if (path !== 'waypoint') {
    const w = plan.dstWorkload!;
    const arrival = {
      kind: 'hbone' as const,
      authority: plan.authority,
      peerIp: source.ip,
      peerIdentity: source.identity!,
    };
    const target = parseHboneAuthority(plan.authority)!;
    return {
      path,
      steps: [step, destinationAgentStep(store, w, arrival, trustDomain)],
      endpoint: { ip: target.ip, port: target.port, namespace: w.namespace, pod: w.name, inMesh: true },
      candidates: choices,
      notes,
    };
  }

  const pod = store.workloadByIp(plan.nextHop.ip);
  const waypoint = { namespace: pod?.namespace ?? '', name: pod?.labels[GATEWAY_NAME_LABEL] ?? '' };
  const outcome = waypointStep(
    store,
    {
      waypoint,
      pod,
      identity: plan.expectedIdentity,
      authority: plan.authority,
      client: { ip: source.ip, identity: source.identity! },
    },
    http,
    index,
    (w) => agent.isMeshWorkload(w),
  );
  const steps: ExplainStep[] = [step, outcome.step];
  const upstream = outcome.upstream;
  const walk = {
    path,
    waypoint,
    ...(outcome.http && { http: outcome.http }),
    candidates: outcome.candidates,
    notes,
  };
  if (upstream === undefined) return { ...walk, steps };
  const endpoint = outcome.step.upstream!;
  if (upstream.workload === undefined || !agent.isMeshWorkload(upstream.workload)) {
    notes.push(
      `${upstream.ip}:${upstream.port} is not in the mesh: the waypoint connects to it in plaintext`,
    );
    return { ...walk, steps, endpoint };
  }
  // The waypoint tunnels on with its own identity, from its own address (it does not speak for the client).
  steps.push(
    destinationAgentStep(
      store,
      upstream.workload,
      {
        kind: 'hbone',
        authority: formatHboneAuthority(upstream.ip, upstream.port),
        peerIp: pod?.podIps[0] ?? plan.nextHop.ip,
        peerIdentity: parseSpiffeId(plan.expectedIdentity),
      },
      trustDomain,
    ),
  );
  return { ...walk, steps, endpoint };
}

function sourceAgentStep(source: ResolvedSource, plan: OutboundPlan, path: FlowPath): SourceAgentStep {
  const base = {
    at: 'source agent' as const,
    ...(source.view.node !== undefined && { node: source.view.node }),
  };
  switch (plan.kind) {
    case 'refuse':
      return { ...base, plan: 'refuse', verdict: 'ERROR', reason: plan.reason };
    case 'passthrough':
      return {
        ...base,
        plan: 'passthrough',
        verdict: 'ALLOWED',
        reason: `${plan.reason}: passed through as it is, no policy applies`,
        nextHop: formatHboneAuthority(plan.target.ip, plan.target.port),
      };
    case 'hbone': {
      const nextHop = formatHboneAuthority(plan.nextHop.ip, plan.nextHop.port);
      return {
        ...base,
        plan: path === 'waypoint' ? 'waypoint' : 'tunnel',
        verdict: 'ALLOWED',
        reason: `tunnelled to ${nextHop} (${path === 'waypoint' ? 'a waypoint' : 'the destination pod'})`,
        nextHop,
        authority: plan.authority,
        expectedIdentity: plan.expectedIdentity,
      };
    }
  }
}
