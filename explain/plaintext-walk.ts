// A client nothing captures (not enrolled, or outside the mesh) sends plaintext: to a pod, or to a
// Service VIP that kube-proxy translates (the mesh translates only what it captures). An enrolled
// destination pod's agent captures it on the way in (agent/inbound-plaintext.ts) and checks it at L4.
import { LocalWorkloads } from '../agent/workloads.js';
import type { ConfigStore } from '../core/store.js';
import { serviceWaypoint, workloadWaypoint } from '../core/waypoints.js';
import { destinationAgentStep } from './destination-agent.js';
import type { ResolvedDestination } from './destination.js';
import type { ExplainedEndpoint } from './explanation.js';
import type { ResolvedSource } from './source.js';
import type { Walk } from './walk.js';

/**
 * Nothing captures the client's traffic, so it leaves as it is: to a pod, or to a Service VIP that
 * kube-proxy (not the mesh) translates. An enrolled destination pod's agent captures it on the way in.
 */
export function plaintextWalk(
  store: ConfigStore,
  source: ResolvedSource,
  destination: ResolvedDestination,
  index: number,
  trustDomain: string,
): Walk {
  const notes: string[] = [];
  const mesh = new LocalWorkloads(store, '', trustDomain);
  let ip = destination.ip;
  let port = destination.port;
  let candidates = 0;
  const service = store.serviceByVip(ip);
  if (service !== undefined) {
    const name = `${service.namespace}/${service.name}`;
    const endpoints = store.endpointsOf(service).filter((ep) => ep.targetPorts[port] !== undefined);
    const chosen = endpoints[Math.min(index, endpoints.length - 1)];
    notes.push(
      `plaintext to Service ${name}'s cluster IP is translated by kube-proxy, not by the mesh ` +
        '(a weft lab has no kube-proxy: there only the agents know cluster IPs)',
    );
    const binding = serviceWaypoint(store, service);
    if (binding.kind === 'waypoint')
      notes.push(
        `Service ${name} is bound to waypoint ${binding.gateway.namespace}/${binding.gateway.name}, but ` +
          'traffic the mesh does not capture on its way out never reaches it: its L7 policies do not apply',
      );
    if (chosen === undefined) {
      const reason = `Service ${name} has no ready endpoint for port ${port}: the connection fails`;
      return { path: 'direct', steps: [], candidates: 0, notes, unseen: { verdict: 'ERROR', reason } };
    }
    candidates = endpoints.length;
    ip = chosen.address;
    port = chosen.targetPorts[destination.port]!;
  }
  const w = store.workloadByIp(ip);
  const inMesh = w !== undefined && mesh.isMeshWorkload(w);
  const endpoint: ExplainedEndpoint = { ip, port, ...(w && { namespace: w.namespace, pod: w.name }), inMesh };
  if (w === undefined || !inMesh) return { path: 'direct', steps: [], endpoint, candidates, notes };
  if (workloadWaypoint(store, w).kind === 'waypoint')
    notes.push(
      `pod ${w.namespace}/${w.name} is bound to a waypoint, but plaintext from outside the mesh is checked ` +
        "by the pod's agent alone (L4)",
    );
  const arrival = { kind: 'plaintext' as const, srcIp: source.ip, dstIp: ip, dstPort: port };
  return {
    path: 'direct',
    steps: [destinationAgentStep(store, w, arrival, trustDomain)],
    endpoint,
    candidates,
    notes,
  };
}
