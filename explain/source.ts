// Who the client is, as the mesh sees it: an address, maybe an identity, and whether a node agent
// captures its traffic (agent/workloads.ts decides that, as it does for the agent's outbound side).
import { LocalWorkloads } from '../agent/workloads.js';
import { isTerminated, type Workload } from '../core/model/workload.js';
import { formatSpiffeId, type SpiffeIdentity } from '../core/spiffe.js';
import type { ConfigStore } from '../core/store.js';
import type { ExplainedSource } from './explanation.js';
import { ExplainQueryError, parseIdentity, queryIp, type ExplainSource } from './query.js';

export interface ResolvedSource {
  readonly view: ExplainedSource;
  readonly ip: string;
  /** Undefined for plaintext. */
  readonly identity: SpiffeIdentity | undefined;
  /** The agent that captures the traffic (its node's view); undefined when nothing captures it. */
  readonly agent: LocalWorkloads | undefined;
  readonly notes: readonly string[];
}

export function resolveSource(
  store: ConfigStore,
  source: ExplainSource,
  trustDomain: string,
): ResolvedSource {
  switch (source.kind) {
    case 'workload': {
      const w = store.workload(source.namespace, source.name);
      if (w === undefined) throw new ExplainQueryError(`pod ${source.namespace}/${source.name} not found`);
      return fromWorkload(store, w, trustDomain, []);
    }
    case 'identity': {
      const identity = parseIdentity(source.identity);
      const ip = queryIp(source.ip, 'source IP');
      const notes: string[] = [];
      if (identity.trustDomain !== trustDomain)
        notes.push(
          `${formatSpiffeId(identity)} is not of the trust domain ${trustDomain}: agents and waypoints ` +
            'refuse its certificate, so it could not open a tunnel at all (explained as if they accepted it)',
        );
      const w = store.workloadByIp(ip);
      const agent = new LocalWorkloads(store, w?.nodeName ?? '', trustDomain);
      if (w !== undefined && agent.spiffeIdOf(w) !== formatSpiffeId(identity))
        notes.push(
          `${ip} is pod ${w.namespace}/${w.name}, whose identity is ${agent.spiffeIdOf(w)}: explained for ` +
            `a client proving ${formatSpiffeId(identity)} from that address`,
        );
      return {
        view: {
          ip,
          ...(w && { namespace: w.namespace, pod: w.name }),
          identity: formatSpiffeId(identity),
          captured: true,
          ...(w?.nodeName !== undefined && { node: w.nodeName }),
        },
        ip,
        identity,
        agent,
        notes,
      };
    }
    case 'address': {
      const ip = queryIp(source.ip, 'source IP');
      const w = store.workloadByIp(ip);
      if (w !== undefined && capturingAgent(store, w, trustDomain) !== undefined)
        return fromWorkload(store, w, trustDomain, [
          `${ip} is pod ${w.namespace}/${w.name}, which is enrolled: its agent captures its traffic, so it ` +
            'is explained as that pod, not as a client outside the mesh',
        ]);
      return {
        view: { ip, ...(w && { namespace: w.namespace, pod: w.name }), captured: false },
        ip,
        identity: undefined,
        agent: undefined,
        notes: [],
      };
    }
  }
}

/** The pod's node agent when it captures the pod's traffic (an enrolled, live pod), else undefined. */
function capturingAgent(store: ConfigStore, w: Workload, trustDomain: string): LocalWorkloads | undefined {
  const agent = new LocalWorkloads(store, w.nodeName ?? '', trustDomain);
  const ip = w.podIps[0];
  return ip !== undefined && agent.owning(ip)?.uid === w.uid ? agent : undefined;
}

function fromWorkload(store: ConfigStore, w: Workload, trustDomain: string, notes: string[]): ResolvedSource {
  const name = `${w.namespace}/${w.name}`;
  const ip = w.podIps[0];
  if (ip === undefined) throw new ExplainQueryError(`pod ${name} has no IP address yet`);
  if (isTerminated(w)) throw new ExplainQueryError(`pod ${name} has finished (${w.phase}): it sends nothing`);
  const agent = capturingAgent(store, w, trustDomain);
  const node = w.nodeName === undefined ? {} : { node: w.nodeName };
  if (agent === undefined) {
    notes.push(
      w.hostNetwork
        ? `pod ${name} uses the host network: the mesh never captures it, so it sends plaintext`
        : `pod ${name} is not enrolled (its namespace is not labelled istio.io/dataplane-mode=ambient, or ` +
            'the pod opts out): it sends plaintext',
    );
    return {
      view: { ip, namespace: w.namespace, pod: w.name, captured: false, ...node },
      ip,
      identity: undefined,
      agent: undefined,
      notes,
    };
  }
  const identity = { trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount };
  return {
    view: {
      ip,
      namespace: w.namespace,
      pod: w.name,
      identity: formatSpiffeId(identity),
      captured: true,
      ...node,
    },
    ip,
    identity,
    agent,
    notes,
  };
}
