// Where `weft observe` reads flows on a cluster: the admin endpoint of every running agent pod (the chart's
// DaemonSet, in the weft namespace) and every running waypoint pod (the chart's waypoints, any
// namespace). Both listen on 127.0.0.1:15000 inside the pod (the node's loopback for the host-network
// agent), which nothing outside reaches, so each is read through a port-forward, as istioctl reads
// ztunnel's and the waypoints' admin ports.
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { loadKubeConfig } from '../core/kubernetes/config.js';
import { apiErrorReason, withTimeout } from '../core/kubernetes/api-call.js';
import { KubernetesPortForwarder, type PodPortForwarder } from './port-forward.js';
import type { PodFlowTarget } from './targets.js';

/** Where the chart installs the agents unless told otherwise (README, Install on Kubernetes). */
export const DEFAULT_WEFT_NAMESPACE = 'weft-system';
/** The admin port of agents and waypoints (agent/main.ts DEFAULT_ADMIN_PORT, proxy/options.ts). */
const ADMIN_PORT = 15000;
/** The chart's selector labels of the agent pods (charts/weft/templates/_helpers.tpl weft.selectorLabels). */
export const AGENT_POD_SELECTOR = 'app.kubernetes.io/name=weft,app.kubernetes.io/component=agent';
/**
 * The chart's waypoint pods. The gateway-name label alone would also pick Istio's and other Gateway API
 * implementations' gateway pods, whose port 15000 (Envoy's admin) has no /flows.
 */
export const WAYPOINT_POD_SELECTOR =
  'app.kubernetes.io/name=weft,app.kubernetes.io/component=waypoint,gateway.networking.k8s.io/gateway-name';
const RUNNING = 'status.phase=Running';
/** One list each; an API server that has not answered by then will not. */
const LIST_TIMEOUT_MS = 10_000;

export interface KubernetesTargetsOptions {
  /** undefined: the in-cluster config (core/kubernetes/config.ts). */
  readonly kubeconfigPath: string | undefined;
  /** Where the agents run (--weft-namespace). */
  readonly weftNamespace: string;
  /** Names the caller in errors, e.g. `--config kubernetes:/path/kubeconfig`. */
  readonly user: string;
}

/**
 * Finds the agent and waypoint pods of one cluster, as often as asked (a follow rescans while it runs).
 * The kubeconfig is loaded once, so credentials (an exec plugin's token) are kept between lists.
 */
export class KubernetesFlowTargets {
  readonly #options: KubernetesTargetsOptions;
  readonly #api: CoreV1Api;
  readonly #forwarder: PodPortForwarder;

  /** Throws ERR_CONFIG_INVALID when the kubeconfig cannot be loaded. */
  constructor(options: KubernetesTargetsOptions) {
    this.#options = options;
    const config = loadKubeConfig(options.kubeconfigPath, options.user);
    this.#api = config.makeApiClient(CoreV1Api);
    this.#forwarder = new KubernetesPortForwarder(config);
  }

  /** The pods running now, agents first (by node), then waypoints (by namespace/pod). */
  async list(): Promise<PodFlowTarget[]> {
    const { weftNamespace, user } = this.#options;
    let agents: V1Pod[];
    let waypoints: V1Pod[];
    try {
      [agents, waypoints] = await Promise.all([
        this.#api
          .listNamespacedPod(
            { namespace: weftNamespace, labelSelector: AGENT_POD_SELECTOR, fieldSelector: RUNNING },
            withTimeout(LIST_TIMEOUT_MS),
          )
          .then((list) => list.items),
        this.#api
          .listPodForAllNamespaces(
            { labelSelector: WAYPOINT_POD_SELECTOR, fieldSelector: RUNNING },
            withTimeout(LIST_TIMEOUT_MS),
          )
          .then((list) => list.items),
      ]);
    } catch (err) {
      throw new Error(`${user}: cannot list the agent and waypoint pods: ${apiErrorReason(err)}`, {
        cause: err,
      });
    }
    return podFlowTargets(agents, waypoints, this.#forwarder);
  }
}

/** The targets for listed pods: only running ones with a name (the lists asked for just those). */
export function podFlowTargets(
  agents: readonly V1Pod[],
  waypoints: readonly V1Pod[],
  forwarder: PodPortForwarder,
): PodFlowTarget[] {
  const target = (pod: V1Pod, name: string): PodFlowTarget => ({
    kind: 'pod',
    name,
    namespace: pod.metadata?.namespace ?? '',
    pod: pod.metadata?.name ?? '',
    port: ADMIN_PORT,
    forwarder,
  });
  const agentTargets = agents
    .filter(isRunning)
    .map((pod) => {
      const ref = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
      const node = pod.spec?.nodeName;
      // Named after the node, as the agent names itself in the events it reports.
      return target(pod, node === undefined ? `agent ${ref}` : `agent ${node} (${ref})`);
    })
    .sort(byName);
  const waypointTargets = waypoints
    .filter(isRunning)
    .map((pod) => target(pod, `waypoint ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`))
    .sort(byName);
  return [...agentTargets, ...waypointTargets];
}

function isRunning(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.metadata?.name ?? '') !== '';
}

function byName(a: PodFlowTarget, b: PodFlowTarget): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
