// `weft explain`: what the mesh would do with one flow, from config alone, without sending traffic. Each
// point on the path decides with the data plane's own code (the source agent's planOutbound, the
// waypoint's target, protocol, policy and route engines, the destination agent's admitInbound and
// PolicyAuthorizer), so an explanation and the flow events of the same flow name the same verdict, policy
// and rule. Pure over a ConfigStore: no I/O.
//
// The path, in the order traffic meets it:
// - a captured client (an enrolled pod, or a mesh identity): its agent plans the connection: refuse,
//   pass through (the destination is outside the mesh), tunnel to the pod, or tunnel to a waypoint;
// - a waypoint: L7 policy (or its TCP view), then the route and an endpoint; plaintext to an endpoint
//   outside the mesh, else a tunnel to the endpoint's agent with the waypoint's own identity;
// - the destination pod's agent, when it is enrolled: PeerAuthentication and L4 policy.
// A client that is not captured sends plaintext: a Service VIP is resolved as kube-proxy would (the mesh
// translates only what it captures), and an enrolled destination's agent captures it on the way in.
//
// Several endpoints: a Service (or a route's backend) with several ready endpoints is explained for the
// first, in the store's order, and every other endpoint's verdict is listed in `endpoints`, with a note
// when they differ (selector policies or pods on other nodes can make them differ).
import { DEFAULT_TRUST_DOMAIN } from '../core/spiffe.js';
import type { ConfigStore } from '../core/store.js';
import { capturedWalk } from './captured-walk.js';
import { resolveDestination } from './destination.js';
import type { EndpointOutcome, Explanation } from './explanation.js';
import { plaintextWalk } from './plaintext-walk.js';
import type { ExplainOptions, ExplainQuery } from './query.js';
import { resolveSource } from './source.js';
import { conclusion, outcomeOf, type Walk } from './walk.js';

export function explainFlow(
  store: ConfigStore,
  query: ExplainQuery,
  options: ExplainOptions = {},
): Explanation {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const source = resolveSource(store, query.source, trustDomain);
  const destination = resolveDestination(store, query.destination, query.port);
  const follow = (index: number): Walk =>
    source.agent === undefined
      ? plaintextWalk(store, source, destination, index, trustDomain)
      : capturedWalk(store, source, source.agent, destination, query.http, index, trustDomain);
  const walk = follow(0);
  const notes = [...source.notes, ...walk.notes];
  if (query.http !== undefined && walk.http === undefined)
    notes.push('no waypoint parses this flow as HTTP: the request is not inspected, only L4 policy applies');
  if (query.http === undefined && walk.http !== undefined)
    notes.push(
      `the waypoint parses this port as HTTP and no request was given: explained as ${walk.http.method} ` +
        `${walk.http.path} (give a method, path, host or headers)`,
    );

  let endpoints: EndpointOutcome[] | undefined;
  if (walk.candidates > 1) {
    endpoints = [outcomeOf(walk)];
    for (let i = 1; i < walk.candidates; i++) endpoints.push(outcomeOf(follow(i)));
    const [head] = endpoints as [EndpointOutcome];
    const differ = endpoints.some(
      (e) => e.verdict !== head.verdict || e.policy !== head.policy || e.rule !== head.rule,
    );
    notes.push(
      differ
        ? `the ${endpoints.length} endpoints do not all get the same verdict (see endpoints); explained for the first`
        : `${endpoints.length} endpoints, all with the same verdict; explained for the first`,
    );
  }
  return {
    source: source.view,
    destination: destination.view,
    path: walk.path,
    ...(walk.waypoint && { waypoint: walk.waypoint }),
    ...(walk.http && { http: walk.http }),
    steps: walk.steps,
    ...conclusion(walk),
    ...(walk.endpoint && { endpoint: walk.endpoint }),
    ...(endpoints && { endpoints }),
    notes,
  };
}
