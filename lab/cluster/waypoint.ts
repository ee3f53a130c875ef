// The objects that make a waypoint, as `weft waypoint apply` writes them into the active source. They
// are what Istio's deployment controller makes from a Gateway of class istio-waypoint:
// - the Gateway, with the HBONE listener on 15008 (and `istio.io/waypoint-for` when asked for);
// - a Service named after it whose endpoints are the waypoint's pods: agents send bound traffic to one
//   of those endpoints (agent/outbound.ts), and find them only through this Service;
// - in a lab, the pod: `weft waypoint run` on the node the lab schedules it to, not captured by the
//   agents (it speaks HBONE itself), with the service account that names its SPIFFE identity, and
//   net.ipv4.tcp_migrate_req=1 in its network namespace, so a restart in place (a new process beside the
//   old one on the same SO_REUSEPORT ports, `weft lab restart waypoint`) resets no queued connection.
// Pure: manifests in, manifests out; the CLI applies them through lab/cluster/apply.ts.
import { join } from 'node:path';
import { formatHostPort } from '../../core/address.js';
import { isObject, type JsonObject } from '../../core/convert/fields.js';
import { nameProblem } from '../../core/convert/names.js';
import { GATEWAY_API_GROUP, WAYPOINT_GATEWAY_CLASS } from '../../core/model/index.js';
import { DATAPLANE_MODE_LABEL, DATAPLANE_MODE_NONE } from '../../core/model/namespace.js';
import { GATEWAY_NAME_LABEL, WAYPOINT_FOR_LABEL, type WaypointFor } from '../../core/waypoints.js';
import { WAYPOINT_DEFAULT_PORTS } from '../../proxy/options.js';
import { CA_SERVER_NAME } from '../ca-process.js';
import { escapeVars } from './pod-spec.js';
import type { LabPlan } from './plan.js';

/** istioctl's default waypoint name. */
export const DEFAULT_WAYPOINT_NAME = 'waypoint';
export const WAYPOINT_FOR_VALUES: readonly WaypointFor[] = ['service', 'workload', 'all', 'none'];
/** The listener (and Service port) name Istio gives a waypoint's HBONE port. */
export const WAYPOINT_LISTENER_NAME = 'mesh';
/**
 * How long a lab waypoint that stops (or is replaced) gives its open connections: short, so a restart's
 * overlap and `lab down` stay short (as the lab's agents, control-plane.ts AGENT_DRAIN_DEADLINE_MS).
 */
export const LAB_WAYPOINT_DRAIN_DEADLINE = '4s';
/**
 * The sysctls of a waypoint pod: connections queued on a stopping process's shared listeners move to its
 * successor (proxy/listeners.ts). Namespaced, but not in Kubernetes' safe set: a cluster must allow it.
 */
export const WAYPOINT_POD_SYSCTLS: readonly { name: string; value: string }[] = [
  { name: 'net.ipv4.tcp_migrate_req', value: '1' },
];

export interface WaypointSpec {
  readonly namespace: string;
  /** The Gateway's name; also the Service's and the service account's. */
  readonly name: string;
  /** The `istio.io/waypoint-for` label; undefined leaves it off (the waypoint then serves Services). */
  readonly waypointFor: WaypointFor | undefined;
}

/** Why `spec` cannot make a waypoint (a message naming the flag), or undefined. */
export function waypointSpecProblem(spec: {
  readonly namespace: string;
  readonly name: string;
  readonly waypointFor: string | undefined;
}): string | undefined {
  const ns = nameProblem(spec.namespace, 'dns1123-label');
  if (ns !== undefined) return `--namespace ${ns}, got ${JSON.stringify(spec.namespace)}`;
  // The Service is named after the Gateway, so the stricter Service rule applies.
  const name = nameProblem(spec.name, 'dns1035-label');
  if (name !== undefined) return `--name ${name}, got ${JSON.stringify(spec.name)}`;
  if (
    spec.waypointFor !== undefined &&
    !(WAYPOINT_FOR_VALUES as readonly string[]).includes(spec.waypointFor)
  )
    return `--for must be one of ${WAYPOINT_FOR_VALUES.join(', ')}, got ${JSON.stringify(spec.waypointFor)}`;
  return undefined;
}

/** The name of the (one) pod the lab runs for a waypoint. */
export function waypointPodName(name: string): string {
  return `${name}-0`;
}

export function waypointGateway(spec: WaypointSpec): JsonObject {
  return {
    apiVersion: `${GATEWAY_API_GROUP}/v1`,
    kind: 'Gateway',
    metadata: {
      name: spec.name,
      namespace: spec.namespace,
      ...(spec.waypointFor === undefined ? {} : { labels: { [WAYPOINT_FOR_LABEL]: spec.waypointFor } }),
    },
    spec: {
      gatewayClassName: WAYPOINT_GATEWAY_CLASS,
      listeners: [{ name: WAYPOINT_LISTENER_NAME, port: WAYPOINT_DEFAULT_PORTS.hbone, protocol: 'HBONE' }],
    },
  };
}

export function waypointService(spec: WaypointSpec): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: spec.name, namespace: spec.namespace, labels: { [GATEWAY_NAME_LABEL]: spec.name } },
    spec: {
      selector: { [GATEWAY_NAME_LABEL]: spec.name },
      ports: [{ name: WAYPOINT_LISTENER_NAME, port: WAYPOINT_DEFAULT_PORTS.hbone, protocol: 'TCP' }],
    },
  };
}

/** Whether a Service manifest is (by its selector) the Service of waypoint `name`. */
export function isWaypointService(manifest: JsonObject, name: string): boolean {
  const selector = isObject(manifest.spec) ? manifest.spec.selector : undefined;
  if (!isObject(selector)) return false;
  const entries = Object.entries(selector);
  return entries.length === 1 && entries[0]![0] === GATEWAY_NAME_LABEL && entries[0]![1] === name;
}

/** Where a waypoint gets its identity and config: the flags of `weft waypoint run` besides name and ports. */
export interface WaypointRunTarget {
  readonly node: string;
  /** `file:DIR`. */
  readonly config: string;
  readonly caAddress: string;
  readonly caServerName: string | undefined;
  readonly caRoot: string;
  readonly tokenFile: string;
  /** `--admin-socket`: the lab's, so `weft observe` reaches the pod's admin endpoints. */
  readonly adminSocket?: string;
  /** `--drain-deadline` (default: the waypoint's own). */
  readonly drainDeadline?: string;
}

/** `weft waypoint run …` (without `weft`). */
export function waypointRunArgs(spec: WaypointSpec, target: WaypointRunTarget): string[] {
  return [
    'waypoint',
    'run',
    '--name',
    spec.name,
    '--namespace',
    spec.namespace,
    '--node',
    target.node,
    '--config',
    target.config,
    '--ca-address',
    target.caAddress,
    ...(target.caServerName === undefined ? [] : ['--ca-server-name', target.caServerName]),
    '--ca-root',
    target.caRoot,
    '--token-file',
    target.tokenFile,
    ...(target.adminSocket === undefined ? [] : ['--admin-socket', target.adminSocket]),
    ...(target.drainDeadline === undefined ? [] : ['--drain-deadline', target.drainDeadline]),
  ];
}

/** A waypoint pod's admin socket in the lab's admin folder (`weft observe` finds them by this form). */
export function waypointAdminSocketName(namespace: string, pod: string): string {
  return `waypoint-${namespace}.${pod}.sock`;
}

/** The pod's own node, as its command line says it: expanded by the lab from the pod's environment. */
const NODE_NAME_REF = '$(NODE_NAME)';

/**
 * The run target of a waypoint pod in lab `plan`, as the agents of the lab are run (control-plane.ts
 * `agentArgs`): the lab's folder, its CA, and the bootstrap token of whichever node the pod lands on
 * (named as plan.ts names `tokenFile`). Literal parts are escaped, so only `$(NODE_NAME)` expands.
 */
export function labWaypointRunTarget(plan: LabPlan): WaypointRunTarget {
  return {
    node: NODE_NAME_REF,
    config: escapeVars(`file:${plan.manifestsDir}`),
    caAddress: formatHostPort(plan.ca.grpc),
    // TLS SNI may not carry an IP (RFC 6066): verify the CA by the DNS name its certificate carries.
    caServerName: CA_SERVER_NAME,
    caRoot: escapeVars(plan.ca.rootCertFile),
    tokenFile: join(escapeVars(plan.tokensDir), `${NODE_NAME_REF}.token`),
    adminSocket: join(escapeVars(plan.adminDir), waypointAdminSocketName('$(POD_NAMESPACE)', '$(POD_NAME)')),
    drainDeadline: LAB_WAYPOINT_DRAIN_DEADLINE,
  };
}

/** The waypoint's pod in a lab (Istio's waypoint template, reduced to what the lab reads). */
export function waypointPod(spec: WaypointSpec, plan: LabPlan): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: waypointPodName(spec.name),
      namespace: spec.namespace,
      labels: {
        [GATEWAY_NAME_LABEL]: spec.name,
        // A waypoint speaks HBONE itself: its traffic must not be captured and tunnelled again.
        [DATAPLANE_MODE_LABEL]: DATAPLANE_MODE_NONE,
      },
    },
    spec: {
      serviceAccountName: spec.name,
      securityContext: { sysctls: WAYPOINT_POD_SYSCTLS.map((s) => ({ ...s })) },
      containers: [
        {
          name: 'waypoint',
          command: ['weft', ...waypointRunArgs(spec, labWaypointRunTarget(plan))],
          // The lab sets NODE_NAME in every pod; stated anyway, so the manifest means the same in Kubernetes.
          env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
          // The lab reports the pod ready once these accept connections on the pod IP.
          ports: [
            { name: WAYPOINT_LISTENER_NAME, containerPort: WAYPOINT_DEFAULT_PORTS.hbone, protocol: 'TCP' },
            { name: 'metrics', containerPort: WAYPOINT_DEFAULT_PORTS.metrics, protocol: 'TCP' },
            { name: 'status-port', containerPort: WAYPOINT_DEFAULT_PORTS.readiness, protocol: 'TCP' },
          ],
        },
      ],
    },
  };
}

/** Everything `weft waypoint apply` writes: Gateway and Service, and in a lab (`plan`) the pod. */
export function waypointManifests(spec: WaypointSpec, plan: LabPlan | undefined): JsonObject[] {
  const objects = [waypointGateway(spec), waypointService(spec)];
  if (plan !== undefined) objects.push(waypointPod(spec, plan));
  return objects;
}
