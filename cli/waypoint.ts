// `weft waypoint apply|list|status|delete|run`: istioctl's waypoint commands against the active source
// (the running lab's manifest folder, or --config file:DIR), and the waypoint process itself.
//
// - apply writes the Gateway (class istio-waypoint, HBONE on 15008), its Service and, in a lab, its pod
//   (lab/cluster/waypoint.ts) with `weft apply`'s checks. --enroll-namespace labels the namespace only
//   once the lab reports the waypoint ready: agents refuse bound traffic while it has no ready pod.
// - list and status read the folder once and report what the mesh makes of it: the namespaces,
//   Services and pods bound to each waypoint (agent/waypoints.ts decides, as in the agents) and its
//   pods; status adds the route conditions (proxy/routing), the policies bound to it (proxy/authz) and
//   the objects the source rejects.
// - delete unbinds the namespace first and waits, so agents send new connections straight to the pods
//   before the Gateway goes (a binding to a missing Gateway fails closed), then removes the objects.
import { readFileSync, statSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { DEFAULT_CA_PORT, DEFAULT_WORKLOAD_TTL_S } from '../ca/defaults.js';
import { isObject } from '../core/convert/fields.js';
import { formatRejection } from '../core/convert/index.js';
import { nameProblem } from '../core/convert/names.js';
import { errorMessage } from '../core/errors.js';
import { cpuProfileFromEnv } from '../core/cpu-profile.js';
import { componentLogger } from '../core/log.js';
import {
  USE_WAYPOINT_LABEL,
  WAYPOINT_GATEWAY_CLASS,
  isWaypoint,
  type AuthorizationAction,
  type ConfigRecord,
  type Workload,
} from '../core/model/index.js';
import { readManifestFile, unreadableFile } from '../core/sources/manifest-file.js';
import { ManifestSet } from '../core/sources/manifest-set.js';
import { DEFAULT_TRUST_DOMAIN } from '../core/spiffe.js';
import { ConfigStore } from '../core/store.js';
import {
  GATEWAY_NAME_LABEL,
  USE_WAYPOINT_NONE,
  WAYPOINT_FOR_LABEL,
  serviceWaypoint,
  waypointFor,
  workloadWaypoint,
  type WaypointBinding as TrafficBinding,
  type WaypointFor,
} from '../core/waypoints.js';
import { waypointBinding } from '../proxy/authz/index.js';
import { WAYPOINT_DEFAULT_PORTS, type WaypointOptions } from '../proxy/options.js';
import { DEFAULT_DRAIN_TIMINGS } from '../proxy/server/drain.js';
import { routeStatuses, type RouteStatus } from '../proxy/routing/index.js';
import {
  activeSource,
  applyManifests,
  deleteObjects,
  labelNamespace,
  type ActiveSource,
} from '../lab/cluster/apply.js';
import {
  listManifestFiles,
  manifestKeyString,
  scanManifestFolder,
  type ManifestKey,
} from '../lab/cluster/manifest-folder.js';
import { isRunning, readLabState, type LabState } from '../lab/cluster/state.js';
import { table } from '../lab/cluster/status.js';
import {
  DEFAULT_WAYPOINT_NAME,
  isWaypointService,
  waypointManifests,
  waypointPodName,
  waypointRunArgs,
  waypointSpecProblem,
  WAYPOINT_FOR_VALUES,
  type WaypointSpec,
} from '../lab/cluster/waypoint.js';
import { labDirFlag } from './lab-dir.js';
import {
  CA_CLIENT_FLAGS,
  caClientFlags,
  closeWithin,
  CLOSE_DEADLINE_MS,
  durationMsFlag,
  durationSecondsFlag,
  FLOW_FLAGS,
  FLOW_FLAGS_USAGE,
  flowFlags,
  hostPortFlag,
  optionalHostPortFlag,
  replicaIdentityFlag,
  parseFlagsAndArgs,
  stringFlag,
  untilSignal,
  UsageError,
  type FlagSpec,
} from './flags.js';

const SOURCE = '[--dir DIR | --config file:DIR]';
const DRAIN_DEADLINE_S = DEFAULT_DRAIN_TIMINGS.deadlineMs / 1000;
const { hbone: HBONE, admin: ADMIN, metrics: METRICS, readiness: READINESS } = WAYPOINT_DEFAULT_PORTS;
export const WAYPOINT_USAGE = `weft waypoint apply -n NS [--name ${DEFAULT_WAYPOINT_NAME}] [--for ${WAYPOINT_FOR_VALUES.join('|')}]
               [--enroll-namespace [--timeout 60s]] ${SOURCE}
               writes the waypoint's Gateway (class ${WAYPOINT_GATEWAY_CLASS}, HBONE on ${HBONE}), its Service and,
               in a lab, its pod; --enroll-namespace then labels NS ${USE_WAYPOINT_LABEL}=NAME once it is ready
weft waypoint list [-n NS] [-o json] ${SOURCE}
weft waypoint status -n NS [--name ${DEFAULT_WAYPOINT_NAME}] [-o json] ${SOURCE}
               what is bound to it, its pods, route conditions, bound policies, rejected objects
weft waypoint delete -n NS [--name ${DEFAULT_WAYPOINT_NAME}] [--grace 2s] ${SOURCE}
               unbinds NS, waits --grace for the agents to route around the waypoint, then removes it
weft waypoint run --name NAME --namespace NS --node NODE --config file:DIR --ca-root FILE --token-file FILE
               [--service-account NAME] [--ca-address HOST:PORT] [--ca-server-name NAME] [--trust-domain TD]
               [--cert-ttl 24h] [--hbone 0.0.0.0:${HBONE}] [--admin 127.0.0.1:${ADMIN}]
               [--metrics 0.0.0.0:${METRICS}] [--readiness 0.0.0.0:${READINESS}]   (admin, metrics, readiness: off)
               [--otlp-endpoint URL] [--route-status [--id REPLICA]] [--drain-deadline ${DRAIN_DEADLINE_S}s]
               ${FLOW_FLAGS_USAGE}
               runs the waypoint (what a lab's waypoint pod runs); --route-status (kubernetes config only):
               the leader of the waypoint's replicas writes HTTPRoute status. On SIGTERM it drains: stops
               accepting, sends GOAWAY on its HBONE connections, closes HTTP/1 connections after their next
               response (or once idle) and sends GOAWAY inside HTTP/2 ones, lets requests finish, and resets
               what is left at --drain-deadline. With the native addon its ports are SO_REUSEPORT listeners, so
               a new process can start beside it first (weft lab restart waypoint); set
               net.ipv4.tcp_migrate_req=1 in its network namespace so connections queued on the old one move
               to the new one (on Kubernetes: an unsafe sysctl, allowed per kubelet, set in the pod's
               securityContext.sysctls)`;

/** Where a command's output goes, one line per call; tests collect it. */
export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
}

const PROCESS_IO: CommandIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/** How long `--enroll-namespace` waits for a lab's waypoint pod to be ready. */
const DEFAULT_READY_TIMEOUT_MS = 60_000;
/**
 * How long `delete` waits between unbinding the namespace and removing the waypoint: agents pick a folder
 * change up within a few hundred ms (the file source's debounce plus a rescan).
 */
const DEFAULT_DELETE_GRACE_MS = 2_000;
const LAB_POLL_MS = 200;

const SOURCE_FLAGS: FlagSpec = { dir: { type: 'string' }, config: { type: 'string' } };
const TARGET_FLAGS: FlagSpec = {
  namespace: { type: 'string', short: 'n' },
  name: { type: 'string' },
};
const OUTPUT_FLAG: FlagSpec = { output: { type: 'string', short: 'o' } };

function parse(argv: string[], spec: FlagSpec): Record<string, unknown> {
  const { values, positionals } = parseFlagsAndArgs(argv, spec);
  if (positionals.length > 0)
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}\n\n${WAYPOINT_USAGE}`);
  return values;
}

function sourceOf(values: Record<string, unknown>): ActiveSource {
  return activeSource(typeof values.config === 'string' ? values.config : undefined, labDirFlag(values));
}

/** The lab whose folder is the source (none with --config). */
function labOf(values: Record<string, unknown>): LabState | undefined {
  return typeof values.config === 'string' ? undefined : readLabState(labDirFlag(values));
}

function specOf(values: Record<string, unknown>, waypointFor?: string): WaypointSpec {
  const spec = {
    namespace: stringFlag(values, 'namespace'),
    name: stringFlag(values, 'name', DEFAULT_WAYPOINT_NAME),
    waypointFor,
  };
  const problem = waypointSpecProblem(spec);
  if (problem !== undefined) throw new UsageError(problem);
  return { ...spec, waypointFor: waypointFor as WaypointFor | undefined };
}

function jsonOutput(values: Record<string, unknown>): boolean {
  const output = values.output;
  if (output === undefined || output === 'text') return false;
  if (output === 'json') return true;
  throw new UsageError(`--output must be text or json, got ${JSON.stringify(output)}`);
}

function describe(kind: string, namespace: string, name: string): string {
  return `${kind} ${namespace}/${name}`;
}

// ---- reading the folder -----------------------------------------------------------------------------

export interface FolderConfig {
  readonly store: ConfigStore;
  /** Every record (the store indexes some kinds only by namespace and name). */
  readonly records: readonly ConfigRecord[];
}

/**
 * The folder read once, by the file source's rules (core/sources: the same conversion, ownership of an
 * object defined twice and file names in rejections), without watching it or logging each rejection.
 */
export function readFolderConfig(dir: string): FolderConfig {
  if (statSync(dir, { throwIfNoEntry: false })?.isDirectory() !== true)
    throw new Error(`file:${dir}: not a folder`);
  const set = new ManifestSet();
  for (const file of listManifestFiles(dir)) {
    // Named as the file source names files: `<folder name>/<path inside it>`.
    const name = join(basename(dir), relative(dir, file)).split(sep).join('/');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      set.setFile(name, unreadableFile(name, `cannot read file: ${errorMessage(err)}`));
      continue;
    }
    set.setFile(name, readManifestFile(name, text));
  }
  const batch = set.takeBatch();
  const store = new ConfigStore();
  store.apply(batch);
  return { store, records: batch.upserts };
}

// ---- the report -------------------------------------------------------------------------------------

export interface WaypointRef {
  readonly namespace: string;
  readonly name: string;
}

export interface WaypointPodReport {
  readonly name: string;
  readonly node: string | undefined;
  readonly ip: string | undefined;
  /** The lab's pod phase (pending, starting, running, ready, restarting, failed); else status.phase. */
  readonly phase: string;
  readonly message: string | undefined;
  /** Listed in the endpoints of the waypoint's Service, which is where agents look for waypoint pods. */
  readonly endpoint: boolean;
}

export interface BoundService {
  readonly namespace: string;
  readonly name: string;
  /** Which label binds it: its own, or its namespace's. */
  readonly via: 'service label' | 'namespace label';
}

export interface WaypointReport {
  readonly namespace: string;
  readonly name: string;
  /**
   * False when only labels name it (or its Gateway is of another class): the agents refuse the traffic
   * bound to it rather than let it bypass the waypoint.
   */
  readonly exists: boolean;
  /** `istio.io/waypoint-for` as the agents read it; undefined for a missing waypoint. */
  readonly waypointFor: WaypointFor | undefined;
  /** `mesh 15008/HBONE`. */
  readonly listeners: readonly string[];
  /** The waypoint's own Service (named after it), through which agents find its pods. */
  readonly service: { readonly clusterIps: readonly string[]; readonly ports: readonly string[] } | undefined;
  /** Namespaces labelled with it. */
  readonly namespaces: readonly string[];
  /** Services whose traffic it carries (or, when it is missing, refused for its sake). */
  readonly services: readonly BoundService[];
  /** Pods whose directly addressed traffic it carries (waypoint-for workload or all), likewise. */
  readonly workloads: readonly string[];
  /** Services and pods labelled with it that it does not serve (`istio.io/waypoint-for`). */
  readonly notServed: readonly string[];
  /** Services of a namespace bound to it that opt out (`none`) or name another waypoint. */
  readonly optedOut: readonly string[];
  readonly pods: readonly WaypointPodReport[];
}

export interface PolicyReport {
  readonly namespace: string;
  readonly name: string;
  readonly action: AuthorizationAction;
  readonly dryRun: boolean;
  /** `Gateway`, `GatewayClass`, `Service shop/reviews`: what binds it here; empty when it does not bind. */
  readonly boundVia: readonly string[];
  /** Why a policy that names this waypoint (or a Service bound to it) does not bind. */
  readonly reason: string | undefined;
}

export interface WaypointStatus extends WaypointReport {
  readonly routes: readonly RouteStatus[];
  readonly policies: readonly PolicyReport[];
  /** Rejections in the waypoint's namespace, the root namespace, or of no namespace (formatted). */
  readonly rejections: readonly string[];
  /** Rejections elsewhere, only counted. */
  readonly otherRejections: number;
}

function ofKind<K extends ConfigRecord['kind']>(
  records: readonly ConfigRecord[],
  kind: K,
): Extract<ConfigRecord, { kind: K }>[] {
  return records.filter((r): r is Extract<ConfigRecord, { kind: K }> => r.kind === kind);
}

function byNamespaceAndName(a: WaypointRef, b: WaypointRef): number {
  return a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);
}

/** Whether traffic bound this way goes to (or, when it is missing, is refused for) waypoint `ref`. */
function pointsAt(binding: TrafficBinding, ref: WaypointRef): boolean {
  if (binding.kind === 'waypoint')
    return binding.gateway.namespace === ref.namespace && binding.gateway.name === ref.name;
  return binding.kind === 'missing' && binding.namespace === ref.namespace && binding.name === ref.name;
}

/**
 * Every waypoint of `namespace` (all when undefined): the Gateways of class istio-waypoint, and the names
 * that `istio.io/use-waypoint` labels give without such a Gateway.
 */
export function findWaypoints(config: FolderConfig, namespace: string | undefined): WaypointRef[] {
  const found = new Map<string, WaypointRef>();
  const add = (ns: string, name: string | undefined): void => {
    if (name === undefined || name === '' || name === USE_WAYPOINT_NONE) return;
    if (namespace === undefined || ns === namespace) found.set(`${ns}/${name}`, { namespace: ns, name });
  };
  for (const gw of ofKind(config.records, 'Gateway')) if (isWaypoint(gw)) add(gw.namespace, gw.name);
  for (const ns of ofKind(config.records, 'Namespace')) add(ns.name, ns.labels[USE_WAYPOINT_LABEL]);
  for (const svc of ofKind(config.records, 'Service')) add(svc.namespace, svc.labels[USE_WAYPOINT_LABEL]);
  for (const pod of ofKind(config.records, 'Pod')) add(pod.namespace, pod.labels[USE_WAYPOINT_LABEL]);
  return [...found.values()].sort(byNamespaceAndName);
}

function isWaypointPodOf(w: Workload, ref: WaypointRef): boolean {
  return w.namespace === ref.namespace && w.labels[GATEWAY_NAME_LABEL] === ref.name;
}

/** What the mesh makes of waypoint `ref`, with its pods' phases from `lab` when the folder is a lab's. */
export function waypointReport(
  config: FolderConfig,
  lab: LabState | undefined,
  ref: WaypointRef,
): WaypointReport {
  const { store } = config;
  const gw = store.gateway(ref.namespace, ref.name);
  const exists = gw !== undefined && isWaypoint(gw);
  const nsLabel = store.namespace(ref.namespace)?.labels[USE_WAYPOINT_LABEL];
  const label = (value: string | undefined): string => `${USE_WAYPOINT_LABEL}=${value ?? ''}`;
  const serves = exists ? waypointFor(gw) : undefined;
  const notServedWhy = `the waypoint serves ${serves === 'none' ? 'no' : serves} traffic (${WAYPOINT_FOR_LABEL})`;

  const services: BoundService[] = [];
  const notServed: string[] = [];
  const optedOut: string[] = [];
  const inNamespace = ofKind(config.records, 'Service')
    .filter((s) => s.namespace === ref.namespace && s.labels[GATEWAY_NAME_LABEL] === undefined)
    .sort(byNamespaceAndName);
  for (const svc of inNamespace) {
    const own = svc.labels[USE_WAYPOINT_LABEL];
    if (pointsAt(serviceWaypoint(store, svc), ref))
      services.push({ ...svc, via: own === undefined ? 'namespace label' : 'service label' });
    else if ((own ?? nsLabel) === ref.name)
      notServed.push(`${describe('Service', svc.namespace, svc.name)}: ${notServedWhy}`);
    else if (nsLabel === ref.name)
      optedOut.push(`${describe('Service', svc.namespace, svc.name)} (${label(own)})`);
  }

  const workloads: string[] = [];
  const pods: Workload[] = [];
  const inNamespacePods = [...store.workloadsInNamespace(ref.namespace)].sort(byNamespaceAndName);
  for (const w of inNamespacePods) {
    if (isWaypointPodOf(w, ref)) pods.push(w);
    if (w.labels[GATEWAY_NAME_LABEL] !== undefined) continue;
    if (pointsAt(workloadWaypoint(store, w), ref)) workloads.push(w.name);
    else if (w.labels[USE_WAYPOINT_LABEL] === ref.name)
      notServed.push(`${describe('Pod', w.namespace, w.name)}: ${notServedWhy}`);
  }

  const own = store.service(ref.namespace, ref.name);
  const ownService = own !== undefined && own.labels[GATEWAY_NAME_LABEL] === ref.name ? own : undefined;
  const endpoints = new Set((ownService ? store.endpointsOf(ownService) : []).map((ep) => ep.address));
  return {
    namespace: ref.namespace,
    name: ref.name,
    exists,
    waypointFor: serves,
    listeners: exists ? gw.listeners.map((l) => `${l.name} ${l.port}/${l.protocol}`) : [],
    service:
      ownService === undefined
        ? undefined
        : {
            clusterIps: ownService.clusterIps,
            ports: ownService.ports.map((p) => `${p.name ?? ''} ${p.port}/${p.protocol}`.trim()),
          },
    namespaces: nsLabel === ref.name ? [ref.namespace] : [],
    services,
    workloads,
    notServed,
    optedOut,
    pods: pods.map((w) => podReport(w, lab, endpoints)),
  };
}

/** agent/waypoints.ts's reading of `istio.io/waypoint-for`: anything but the four values means service. */
function podReport(
  w: Workload,
  lab: LabState | undefined,
  endpoints: ReadonlySet<string>,
): WaypointPodReport {
  const base = {
    name: w.name,
    node: w.nodeName,
    ip: w.podIps[0],
    endpoint: w.podIps.some((ip) => endpoints.has(ip)),
  };
  if (lab === undefined) return { ...base, phase: w.phase, message: undefined };
  const running = lab.controller !== null && isRunning(lab.controller);
  const state = lab.pods.find((p) => p.namespace === w.namespace && p.name === w.name);
  return {
    ...base,
    phase: state?.phase ?? 'pending',
    message: running ? state?.message : `the lab controller is not running (lab ${lab.id})`,
  };
}

/** The report, plus route conditions, bound policies and rejections. */
export function waypointStatus(
  config: FolderConfig,
  lab: LabState | undefined,
  ref: WaypointRef,
): WaypointStatus {
  const report = waypointReport(config, lab, ref);
  const { store } = config;
  const root = store.rootNamespace;
  const relevant = (ns: string): boolean => ns === '' || ns === ref.namespace || ns === root;
  const rejections = store.allRejections();
  return {
    ...report,
    routes: report.exists ? routeStatuses(store, ref) : [],
    policies: report.exists ? policyReports(config, report) : [],
    rejections: rejections.filter((r) => relevant(r.namespace)).map(formatRejection),
    otherRejections: rejections.filter((r) => !relevant(r.namespace)).length,
  };
}

function policyReports(config: FolderConfig, report: WaypointReport): PolicyReport[] {
  const { store } = config;
  const root = store.rootNamespace;
  const waypoint = { namespace: report.namespace, name: report.name };
  const serviceNames = new Set(report.services.map((s) => s.name));
  const reports: PolicyReport[] = [];
  for (const ns of new Set([root, report.namespace])) {
    const policies = [...store.authorizationPolicies(ns)].sort((a, b) => a.name.localeCompare(b.name));
    for (const policy of policies) {
      if (policy.attachment.type !== 'targetRefs') continue;
      const boundVia: string[] = [];
      const gateway = waypointBinding(policy, { waypoint, service: undefined }, root);
      if (gateway.bound) boundVia.push(gateway.via);
      for (const svc of report.services) {
        const service = { namespace: svc.namespace, name: svc.name };
        const binding = waypointBinding(policy, { waypoint, service }, root);
        if (binding.bound && binding.via === 'Service')
          boundVia.push(describe('Service', svc.namespace, svc.name));
      }
      // A policy that does not bind is shown only when it names this waypoint or one of its Services.
      const named = policy.attachment.targetRefs.find(
        (r) =>
          (r.kind === 'Gateway' && r.name === report.name) ||
          (r.kind === 'GatewayClass' && r.name === WAYPOINT_GATEWAY_CLASS) ||
          (r.kind === 'Service' && serviceNames.has(r.name)),
      );
      if (boundVia.length === 0 && named === undefined) continue;
      let reason: string | undefined;
      if (boundVia.length === 0) {
        const service =
          named?.kind === 'Service' ? { namespace: report.namespace, name: named.name } : undefined;
        const binding = waypointBinding(policy, { waypoint, service }, root);
        reason = binding.bound ? undefined : binding.reason;
      }
      reports.push({
        namespace: policy.namespace,
        name: policy.name,
        action: policy.action,
        dryRun: policy.dryRun,
        boundVia,
        reason,
      });
    }
  }
  return reports;
}

// ---- text -------------------------------------------------------------------------------------------

const orDash = (list: readonly string[]): string => (list.length === 0 ? '-' : list.join(','));

function missingNote(r: WaypointReport): string {
  return (
    `${r.namespace}/${r.name}: no Gateway of class ${WAYPOINT_GATEWAY_CLASS}; ` +
    `the agents refuse traffic bound to it (create it with weft waypoint apply, or remove the labels)`
  );
}

export function formatWaypointList(reports: readonly WaypointReport[]): string[] {
  if (reports.length === 0) return ['no waypoints'];
  const lines = table([
    ['NAMESPACE', 'NAME', 'FOR', 'NAMESPACES', 'SERVICES', 'WORKLOADS', 'PODS'],
    ...reports.map((r) => [
      r.namespace,
      r.name,
      r.waypointFor ?? 'MISSING',
      orDash(r.namespaces),
      orDash(r.services.map((s) => s.name)),
      orDash(r.workloads),
      orDash(r.pods.map((p) => `${p.name}(${p.phase})`)),
    ]),
  ]);
  for (const r of reports) if (!r.exists) lines.push(`! ${missingNote(r)}`);
  return lines;
}

function section(title: string, body: readonly string[]): string[] {
  return ['', title, ...(body.length === 0 ? ['  (none)'] : body.map((l) => `  ${l}`))];
}

function formatParentRef(ref: RouteStatus['parents'][number]['parentRef']): string {
  const where =
    ref.sectionName !== undefined ? `/${ref.sectionName}` : ref.port !== undefined ? `:${ref.port}` : '';
  return `${ref.kind} ${ref.namespace}/${ref.name}${where}`;
}

export function formatWaypointStatus(s: WaypointStatus): string[] {
  const lines = [
    `Waypoint ${s.namespace}/${s.name}${s.exists ? ` (for ${s.waypointFor})` : ' MISSING'}`,
    ...(s.exists
      ? [`  Gateway     class ${WAYPOINT_GATEWAY_CLASS}, listeners ${s.listeners.join(', ')}`]
      : [`  ! ${missingNote(s)}`]),
    `  Service     ${
      s.service === undefined
        ? `none: agents find no waypoint pods without Service ${s.namespace}/${s.name} selecting ${GATEWAY_NAME_LABEL}=${s.name}`
        : `${s.namespace}/${s.name} ${s.service.clusterIps.join(',') || '(no cluster IP yet)'} ports ${s.service.ports.join(', ')}`
    }`,
  ];
  const pods = s.pods.map(
    (p) =>
      `${p.name}  ${p.node ?? '(unscheduled)'}  ${p.ip ?? '(no IP)'}  ${p.phase}  ` +
      `${p.endpoint ? 'endpoint' : 'not an endpoint'}${p.message === undefined ? '' : `  ${p.message}`}`,
  );
  const bound = [
    ...s.namespaces.map((ns) => `Namespace ${ns} (${USE_WAYPOINT_LABEL}=${s.name})`),
    ...s.services.map((svc) => `${describe('Service', svc.namespace, svc.name)} (${svc.via})`),
    ...s.workloads.map((w) => `${describe('Pod', s.namespace, w)}`),
  ];
  const label = (title: string, body: readonly string[]): string[] =>
    body.length === 0 ? [] : body.map((l, i) => `  ${(i === 0 ? title : '').padEnd(12)}${l}`);
  lines.push(
    ...label('Pods', pods.length === 0 ? ['none'] : pods),
    ...label('Bound', bound.length === 0 ? ['nothing'] : bound),
    ...label('Opted out', s.optedOut),
    ...label('Not served', s.notServed),
  );
  const routes = s.routes.flatMap((route) =>
    route.parents.flatMap((parent) => [
      `HTTPRoute ${route.namespace}/${route.name} -> ${formatParentRef(parent.parentRef)}`,
      ...parent.conditions.map((c) => `  ${c.type}=${c.status} ${c.reason}: ${c.message}`),
    ]),
  );
  const policies = s.policies.map(
    (p) =>
      `${p.namespace}/${p.name} ${p.action}${p.dryRun ? ' (dry run)' : ''}: ` +
      (p.boundVia.length > 0 ? `bound via ${p.boundVia.join(', ')}` : `not bound: ${p.reason ?? ''}`),
  );
  const rejections = [...s.rejections];
  if (s.otherRejections > 0) rejections.push(`(${s.otherRejections} more in other namespaces)`);
  lines.push(
    ...section('Routes', routes),
    ...section('AuthorizationPolicies', policies),
    ...section('Rejected objects', rejections),
  );
  return lines;
}

// ---- apply ------------------------------------------------------------------------------------------

/** Objects in the folder that a waypoint `spec` would overwrite but are not a waypoint's. */
function conflicts(source: ActiveSource, spec: WaypointSpec): string[] {
  const folder = scanManifestFolder(source.manifestsDir);
  const at = (kind: string, name: string) =>
    folder.get(manifestKeyString({ kind, namespace: spec.namespace, name }));
  const problems: string[] = [];
  const gw = at('Gateway', spec.name);
  const gwClass =
    gw !== undefined && isObject(gw.manifest.spec) ? gw.manifest.spec.gatewayClassName : undefined;
  if (gw !== undefined && gwClass !== WAYPOINT_GATEWAY_CLASS)
    problems.push(
      `${describe('Gateway', spec.namespace, spec.name)} in ${gw.file} is of class ${JSON.stringify(gwClass)}, not a waypoint`,
    );
  const svc = at('Service', spec.name);
  if (svc !== undefined && !isWaypointService(svc.manifest, spec.name))
    problems.push(
      `${describe('Service', spec.namespace, spec.name)} in ${svc.file} is not the waypoint's (its selector is not ${GATEWAY_NAME_LABEL}=${spec.name})`,
    );
  const pod = source.plan === undefined ? undefined : at('Pod', waypointPodName(spec.name));
  const podLabels =
    pod !== undefined && isObject(pod.manifest.metadata) ? pod.manifest.metadata.labels : undefined;
  if (pod !== undefined && !(isObject(podLabels) && podLabels[GATEWAY_NAME_LABEL] === spec.name))
    problems.push(
      `${describe('Pod', spec.namespace, waypointPodName(spec.name))} in ${pod.file} is not the waypoint's (no label ${GATEWAY_NAME_LABEL}=${spec.name})`,
    );
  return problems;
}

async function applyCommand(argv: string[], io: CommandIo): Promise<number> {
  const values = parse(argv, {
    ...SOURCE_FLAGS,
    ...TARGET_FLAGS,
    for: { type: 'string' },
    'enroll-namespace': { type: 'boolean' },
    timeout: { type: 'string' },
  });
  const spec = specOf(values, typeof values.for === 'string' ? values.for : undefined);
  const timeoutMs = durationMsFlag(values, 'timeout', DEFAULT_READY_TIMEOUT_MS);
  const source = sourceOf(values);
  const clashes = conflicts(source, spec);
  if (clashes.length > 0) {
    io.err(`weft: nothing applied; choose another --name:`);
    for (const c of clashes) io.err(`  ${c}`);
    return 1;
  }
  const text = waypointManifests(spec, source.plan)
    .map((m) => stringify(m))
    .join('---\n');
  const result = applyManifests(source, [{ name: `waypoint-${spec.namespace}-${spec.name}.yaml`, text }]);
  for (const w of result.warnings) io.err(`weft: warning: ${w}`);
  if (result.rejections.length > 0) {
    io.err(`weft: nothing applied; ${result.rejections.length} object(s) rejected:`);
    for (const r of result.rejections) io.err(`  ${r}`);
    return 1;
  }
  for (const c of result.changes) io.out(`${c.object} ${c.action}`);
  io.out(`waypoint ${spec.namespace}/${spec.name} applied`);
  if (source.plan === undefined) printRunHint(io, spec, source);
  if (values['enroll-namespace'] === true) {
    if (source.plan !== undefined) await waitForWaypointPod(labDirFlag(values), spec, timeoutMs, io);
    else
      io.err(
        `weft: warning: no lab runs this waypoint: the agents refuse traffic to ${spec.namespace}'s Services until a waypoint pod is ready`,
      );
    const labelled = labelNamespace(source, spec.namespace, [{ key: USE_WAYPOINT_LABEL, value: spec.name }]);
    io.out(
      labelled.action === 'unchanged'
        ? `namespace ${spec.namespace} already labeled with "${USE_WAYPOINT_LABEL}: ${spec.name}"`
        : `namespace ${spec.namespace} labeled with "${USE_WAYPOINT_LABEL}: ${spec.name}"`,
    );
  }
  return 0;
}

function printRunHint(io: CommandIo, spec: WaypointSpec, source: ActiveSource): void {
  const args = waypointRunArgs(spec, {
    node: 'NODE',
    config: `file:${source.manifestsDir}`,
    caAddress: `CA_HOST:${DEFAULT_CA_PORT}`,
    caServerName: undefined,
    caRoot: 'ROOT_CERT',
    tokenFile: 'NODE_TOKEN',
  });
  io.out(
    `no lab runs it here: run it as a Pod in the folder labelled ${GATEWAY_NAME_LABEL}=${spec.name} with ` +
      `serviceAccountName ${spec.name} (so the Service selects it and the CA grants its identity), with:`,
  );
  io.out(`  weft ${args.join(' ')}`);
}

/** Resolves once the lab reports every pod of the waypoint ready; throws naming the pod otherwise. */
async function waitForWaypointPod(
  labDir: string,
  spec: WaypointSpec,
  timeoutMs: number,
  io: CommandIo,
): Promise<void> {
  const pod = waypointPodName(spec.name);
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    const lab = readLabState(labDir);
    const state = lab?.pods.find((p) => p.namespace === spec.namespace && p.name === pod);
    if (state?.phase === 'ready') return;
    const why =
      state === undefined ? 'not started yet' : `${state.phase}${state.message ? `: ${state.message}` : ''}`;
    const notLabelled =
      `namespace ${spec.namespace} not labelled (the agents would refuse its traffic meanwhile); once it is ` +
      `ready: weft label namespace ${spec.namespace} ${USE_WAYPOINT_LABEL}=${spec.name}`;
    if (lab === undefined || lab.controller === null || !isRunning(lab.controller))
      throw new Error(
        `the lab in ${labDir} is not running, so waypoint pod ${spec.namespace}/${pod} will not start; ${notLabelled}`,
      );
    if (Date.now() >= deadline)
      throw new Error(
        `waypoint pod ${spec.namespace}/${pod} not ready after ${timeoutMs} ms (${why}; log ${state?.log ?? 'none'}); ${notLabelled}`,
      );
    if (!announced) io.out(`waiting for waypoint pod ${spec.namespace}/${pod} to be ready…`);
    announced = true;
    await sleep(LAB_POLL_MS);
  }
}

// ---- list, status -----------------------------------------------------------------------------------

function listCommand(argv: string[], io: CommandIo): number {
  const values = parse(argv, { ...SOURCE_FLAGS, ...OUTPUT_FLAG, namespace: { type: 'string', short: 'n' } });
  const json = jsonOutput(values);
  const namespace = typeof values.namespace === 'string' ? values.namespace : undefined;
  const config = readFolderConfig(sourceOf(values).manifestsDir);
  const lab = labOf(values);
  const reports = findWaypoints(config, namespace).map((ref) => waypointReport(config, lab, ref));
  if (json) io.out(JSON.stringify(reports, null, 2));
  else for (const line of formatWaypointList(reports)) io.out(line);
  return 0;
}

function statusCommand(argv: string[], io: CommandIo): number {
  const values = parse(argv, { ...SOURCE_FLAGS, ...TARGET_FLAGS, ...OUTPUT_FLAG });
  const json = jsonOutput(values);
  const spec = specOf(values);
  const source = sourceOf(values);
  const config = readFolderConfig(source.manifestsDir);
  const ref = { namespace: spec.namespace, name: spec.name };
  if (!findWaypoints(config, spec.namespace).some((w) => w.name === spec.name)) {
    const gw = config.store.gateway(spec.namespace, spec.name);
    throw new Error(
      gw === undefined
        ? `waypoint ${spec.namespace}/${spec.name} not found in ${source.description}`
        : `Gateway ${spec.namespace}/${spec.name} is of class ${gw.gatewayClassName}, not a waypoint`,
    );
  }
  const status = waypointStatus(config, labOf(values), ref);
  if (json) io.out(JSON.stringify(status, null, 2));
  else for (const line of formatWaypointStatus(status)) io.out(line);
  return status.exists ? 0 : 1;
}

// ---- delete -----------------------------------------------------------------------------------------

async function deleteCommand(argv: string[], io: CommandIo): Promise<number> {
  const values = parse(argv, { ...SOURCE_FLAGS, ...TARGET_FLAGS, grace: { type: 'string' } });
  const spec = specOf(values);
  const graceMs = durationMsFlag(values, 'grace', DEFAULT_DELETE_GRACE_MS);
  const source = sourceOf(values);
  const { namespace, name } = spec;
  const folder = scanManifestFolder(source.manifestsDir);
  const at = (kind: string, ns: string, objectName: string) =>
    folder.get(manifestKeyString({ kind, namespace: ns, name: objectName }));

  const keys: ManifestKey[] = [];
  const gw = at('Gateway', namespace, name);
  if (gw !== undefined) {
    const gwClass = isObject(gw.manifest.spec) ? gw.manifest.spec.gatewayClassName : undefined;
    if (gwClass !== WAYPOINT_GATEWAY_CLASS)
      throw new Error(
        `Gateway ${namespace}/${name} is of class ${JSON.stringify(gwClass)}, not a waypoint: not deleted`,
      );
    keys.push(gw.key);
  }
  const svc = at('Service', namespace, name);
  if (svc !== undefined && isWaypointService(svc.manifest, name)) keys.push(svc.key);
  else if (svc !== undefined)
    io.err(
      `weft: warning: ${describe('Service', namespace, name)} is not the waypoint's (its selector differs): kept`,
    );
  for (const location of folder.values()) {
    const labels = isObject(location.manifest.metadata) ? location.manifest.metadata.labels : undefined;
    if (
      location.key.kind === 'Pod' &&
      location.key.namespace === namespace &&
      isObject(labels) &&
      labels[GATEWAY_NAME_LABEL] === name
    )
      keys.push(location.key);
  }
  const nsManifest = at('Namespace', '', namespace)?.manifest;
  const nsLabels =
    nsManifest !== undefined && isObject(nsManifest.metadata) ? nsManifest.metadata.labels : undefined;
  const nsBound = isObject(nsLabels) && nsLabels[USE_WAYPOINT_LABEL] === name;
  if (keys.length === 0 && !nsBound)
    throw new Error(`waypoint ${namespace}/${name} not found in ${source.description}`);

  // 1. Unbind the namespace: agents then send its Services' new connections straight to their pods.
  if (nsBound) {
    labelNamespace(source, namespace, [{ key: USE_WAYPOINT_LABEL, value: null }]);
    io.out(`namespace ${namespace} unlabeled ("${USE_WAYPOINT_LABEL}: ${name}" removed)`);
  }
  // Objects that still name the waypoint themselves are the user's: say so, change nothing.
  const { records } = readFolderConfig(source.manifestsDir);
  for (const r of records)
    if (
      (r.kind === 'Service' || r.kind === 'Pod') &&
      r.namespace === namespace &&
      r.labels[USE_WAYPOINT_LABEL] === name
    )
      io.err(
        `weft: warning: ${describe(r.kind, r.namespace, r.name)} is labelled ${USE_WAYPOINT_LABEL}=${name}: ` +
          `its traffic is refused once the waypoint is gone (remove the label, or set it to none)`,
      );
  // 2. Give every agent time to see it (only new connections matter: in-flight ones end with the pod).
  if (nsBound && keys.length > 0 && graceMs > 0) {
    io.out(`waiting ${graceMs} ms for the agents to route around the waypoint…`);
    await sleep(graceMs);
  }
  // 3. Remove the Gateway, its Service and its pods.
  for (const d of deleteObjects(source, keys)) io.out(`${d.object} deleted`);
  io.out(`waypoint ${namespace}/${name} deleted`);
  return 0;
}

// ---- run --------------------------------------------------------------------------------------------

/** `weft waypoint run` flags as the waypoint's options; each bad value is a UsageError naming its flag. */
export function waypointRunOptions(argv: string[]): WaypointOptions {
  const f = parse(argv, {
    name: { type: 'string' },
    namespace: { type: 'string' },
    node: { type: 'string' },
    'service-account': { type: 'string' },
    config: { type: 'string' },
    ...CA_CLIENT_FLAGS,
    'trust-domain': { type: 'string' },
    'cert-ttl': { type: 'string' },
    hbone: { type: 'string' },
    admin: { type: 'string' },
    metrics: { type: 'string' },
    readiness: { type: 'string' },
    'otlp-endpoint': { type: 'string' },
    'route-status': { type: 'boolean' },
    id: { type: 'string' },
    'drain-deadline': { type: 'string' },
    ...FLOW_FLAGS,
  });
  const name = stringFlag(f, 'name');
  const namespace = stringFlag(f, 'namespace');
  const problem = waypointSpecProblem({ namespace, name, waypointFor: undefined });
  if (problem !== undefined) throw new UsageError(problem);
  const serviceAccount = stringFlag(f, 'service-account', name);
  const saProblem = nameProblem(serviceAccount, 'dns1123-subdomain');
  if (saProblem !== undefined)
    throw new UsageError(`--service-account ${saProblem}, got ${JSON.stringify(serviceAccount)}`);
  return {
    name,
    namespace,
    serviceAccount,
    nodeName: stringFlag(f, 'node'),
    trustDomain: stringFlag(f, 'trust-domain', DEFAULT_TRUST_DOMAIN),
    configSource: stringFlag(f, 'config'),
    ca: caClientFlags(f, `127.0.0.1:${DEFAULT_CA_PORT}`),
    certTtlSeconds: durationSecondsFlag(f, 'cert-ttl', DEFAULT_WORKLOAD_TTL_S),
    hboneListen: hostPortFlag(f, 'hbone', `0.0.0.0:${WAYPOINT_DEFAULT_PORTS.hbone}`),
    adminListen: optionalHostPortFlag(f, 'admin', `127.0.0.1:${WAYPOINT_DEFAULT_PORTS.admin}`),
    metricsListen: optionalHostPortFlag(f, 'metrics', `0.0.0.0:${WAYPOINT_DEFAULT_PORTS.metrics}`),
    readinessListen: optionalHostPortFlag(f, 'readiness', `0.0.0.0:${WAYPOINT_DEFAULT_PORTS.readiness}`),
    otlpEndpoint: otlpEndpointFlag(f),
    routeStatus: f['route-status'] === true ? { identity: replicaIdentityFlag(f) } : undefined,
    drain: { deadlineMs: durationMsFlag(f, 'drain-deadline', DEFAULT_DRAIN_TIMINGS.deadlineMs) },
    // The lab and the chart set POD_NAME (the downward API); it names this replica in flow events.
    ...(process.env.POD_NAME !== undefined &&
      process.env.POD_NAME !== '' && { podName: process.env.POD_NAME }),
    ...flowFlags(f),
  };
}

function otlpEndpointFlag(f: Record<string, unknown>): string | undefined {
  const v = f['otlp-endpoint'];
  if (typeof v !== 'string') return undefined;
  let url: URL | undefined;
  try {
    url = new URL(v);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new UsageError(
      `--otlp-endpoint: expected an http(s) URL such as http://collector:4318/v1/traces, got ${v}`,
    );
  return v;
}

async function runCommand(argv: string[]): Promise<number> {
  const options = waypointRunOptions(argv);
  // Loaded here, not at the top: the other subcommands need none of the proxy.
  const { startWaypoint } = await import('../proxy/main.js');
  const stopProfile = await cpuProfileFromEnv('waypoint');
  const waypoint = await startWaypoint(options);
  const sig = await untilSignal();
  componentLogger('proxy').info({ signal: sig }, 'waypoint stopping');
  await waypoint.drain(`signal ${sig}`);
  await closeWithin(() => waypoint.close(), CLOSE_DEADLINE_MS);
  await stopProfile();
  // Exit now: a torn-down HTTP/2 session can keep Node's handle cleanup spinning at a natural exit.
  process.exit(0);
}

export async function waypointCommand(argv: string[], io: CommandIo = PROCESS_IO): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'apply':
      return applyCommand(rest, io);
    case 'list':
      return listCommand(rest, io);
    case 'status':
      return statusCommand(rest, io);
    case 'delete':
      return deleteCommand(rest, io);
    case 'run':
      return runCommand(rest);
    default:
      throw new UsageError(WAYPOINT_USAGE);
  }
}
