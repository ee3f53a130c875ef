// What the lab reads from a Pod manifest beyond the mesh's Workload record: the command to run, its
// environment, and whether the pod fits this lab (a node that exists, an IP inside that node's CIDR).
// The mesh's own checks are core/convert's; these come after them and name the field the same way.
import { isObject, shown, type JsonObject } from '../../core/convert/fields.js';
import { canonicalIp } from '../../core/model/ip.js';
import { weftCliPath } from '../processes.js';
import { cidrContains, cidrSize, ipv4ToInt } from './ipam.js';
import { FIRST_FIXED_POD_OFFSET, labNode, type LabNodePlan, type LabPlan } from './plan.js';

/** One thing wrong with a manifest for the lab, phrased as core/convert phrases rejections. */
export interface LabProblem {
  readonly field: string;
  readonly reason: string;
}

export interface PodRunSpec {
  /** `command` then `args` of the first container; empty when the pod runs nothing (a network only). */
  readonly argv: readonly string[];
  /** `env` of the first container: literal values and the downward-API fields listed below. */
  readonly env: readonly EnvEntry[];
  readonly workingDir: string | undefined;
}

export type EnvEntry =
  { readonly name: string; readonly value: string } | { readonly name: string; readonly fieldPath: string };

/** Downward-API fields the lab can fill (`valueFrom.fieldRef.fieldPath`), besides `metadata.labels['k']`. */
const FIELD_PATHS = [
  'metadata.name',
  'metadata.namespace',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.podIP',
  'status.hostIP',
];
const LABEL_FIELD_PATH = /^metadata\.labels\['([^']+)'\]$/;

/** The run spec of a Pod manifest, or the first problem with it. */
export function readPodRunSpec(manifest: JsonObject): PodRunSpec | LabProblem {
  const spec = isObject(manifest.spec) ? manifest.spec : {};
  const containers = spec.containers;
  if (containers === undefined || containers === null) return { argv: [], env: [], workingDir: undefined };
  if (!Array.isArray(containers))
    return { field: 'spec.containers', reason: `must be a list, got ${shown(containers)}` };
  if (containers.length === 0) return { argv: [], env: [], workingDir: undefined };
  const c: unknown = containers[0];
  if (!isObject(c)) return { field: 'spec.containers[0]', reason: `must be an object, got ${shown(c)}` };
  const command = stringList(c.command, 'spec.containers[0].command');
  if ('reason' in command) return command;
  const args = stringList(c.args, 'spec.containers[0].args');
  if ('reason' in args) return args;
  if (command.list.length === 0 && args.list.length > 0)
    return {
      field: 'spec.containers[0].command',
      reason: 'is required when args are given (the lab has no images, so no default entrypoint)',
    };
  const env = readEnv(c.env);
  if ('reason' in env) return env;
  const workingDir = c.workingDir;
  if (workingDir !== undefined && workingDir !== null && typeof workingDir !== 'string')
    return { field: 'spec.containers[0].workingDir', reason: `must be a string, got ${shown(workingDir)}` };
  return {
    argv: [...command.list, ...args.list],
    env: env.list,
    workingDir: typeof workingDir === 'string' && workingDir !== '' ? workingDir : undefined,
  };
}

function stringList(value: unknown, field: string): { list: string[] } | LabProblem {
  if (value === undefined || value === null) return { list: [] };
  if (!Array.isArray(value)) return { field, reason: `must be a list of strings, got ${shown(value)}` };
  const bad = value.findIndex((v) => typeof v !== 'string');
  if (bad !== -1) return { field: `${field}[${bad}]`, reason: `must be a string, got ${shown(value[bad])}` };
  return { list: value as string[] };
}

function readEnv(value: unknown): { list: EnvEntry[] } | LabProblem {
  const field = 'spec.containers[0].env';
  if (value === undefined || value === null) return { list: [] };
  if (!Array.isArray(value)) return { field, reason: `must be a list, got ${shown(value)}` };
  const list: EnvEntry[] = [];
  for (const [i, entry] of value.entries()) {
    const at = `${field}[${i}]`;
    if (!isObject(entry) || typeof entry.name !== 'string' || entry.name === '')
      return { field: `${at}.name`, reason: 'is required' };
    const { name, value: literal, valueFrom } = entry;
    if (valueFrom !== undefined && valueFrom !== null) {
      const fieldPath =
        isObject(valueFrom) && isObject(valueFrom.fieldRef) ? valueFrom.fieldRef.fieldPath : undefined;
      if (
        typeof fieldPath !== 'string' ||
        !(FIELD_PATHS.includes(fieldPath) || LABEL_FIELD_PATH.test(fieldPath))
      )
        return {
          field: `${at}.valueFrom`,
          reason: `the lab supports only fieldRef.fieldPath ${FIELD_PATHS.join(', ')} or metadata.labels['…'], got ${shown(valueFrom)}`,
        };
      list.push({ name, fieldPath });
    } else if (literal === undefined || literal === null || typeof literal === 'string') {
      list.push({ name, value: typeof literal === 'string' ? literal : '' });
    } else {
      return { field: `${at}.value`, reason: `must be a string, got ${shown(literal)}` };
    }
  }
  return { list };
}

/** What a running pod is, for its environment. */
export interface PodFacts {
  readonly namespace: string;
  readonly name: string;
  readonly serviceAccount: string;
  readonly node: LabNodePlan;
  readonly ip: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Variables every lab pod gets, whatever its manifest says. */
export function podEnv(spec: PodRunSpec, pod: PodFacts): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    LANG: process.env.LANG ?? 'C.UTF-8',
    POD_NAME: pod.name,
    POD_NAMESPACE: pod.namespace,
    POD_IP: pod.ip,
    POD_SERVICE_ACCOUNT: pod.serviceAccount,
    NODE_NAME: pod.node.name,
    HOST_IP: pod.node.uplinkIp,
  };
  if (process.env.WEFT_LOG_LEVEL !== undefined) env.WEFT_LOG_LEVEL = process.env.WEFT_LOG_LEVEL;
  // As in Kubernetes, a value may refer to the variables defined before it: `$(POD_NAME).log`.
  for (const entry of spec.env)
    env[entry.name] = 'value' in entry ? expandVars(entry.value, env) : fieldValue(entry.fieldPath, pod);
  return env;
}

/** `$$`, `$(NAME)` with a name that holds no `)`, or `$` and whatever one character follows. */
const VAR_REFERENCE = /\$(?:(\$)|\(([^)]*)\)|[\s\S])/g;

/**
 * Kubernetes' variable expansion in `command`, `args` and `env` values: `$(VAR)` becomes the value of
 * VAR; `$$` becomes `$`, so `$$(VAR)` is a literal `$(VAR)`; a reference to a variable that is not
 * defined, an unclosed `$(` and any other `$` stay as written.
 */
export function expandVars(text: string, env: Readonly<Record<string, string>>): string {
  if (!text.includes('$')) return text;
  return text.replace(VAR_REFERENCE, (whole, dollar: string | undefined, name: string | undefined) => {
    if (dollar !== undefined) return '$';
    if (name !== undefined && Object.hasOwn(env, name)) return env[name]!;
    return whole;
  });
}

/** `text` as a literal that `expandVars` gives back unchanged (every `$` doubled). */
export function escapeVars(text: string): string {
  return text.replace(/\$/g, () => '$$');
}

/** `expandVars` over a command line. */
export function expandArgv(argv: readonly string[], env: Readonly<Record<string, string>>): string[] {
  return argv.map((arg) => expandVars(arg, env));
}

function fieldValue(fieldPath: string, pod: PodFacts): string {
  switch (fieldPath) {
    case 'metadata.name':
      return pod.name;
    case 'metadata.namespace':
      return pod.namespace;
    case 'spec.nodeName':
      return pod.node.name;
    case 'spec.serviceAccountName':
      return pod.serviceAccount;
    case 'status.podIP':
      return pod.ip;
    case 'status.hostIP':
      return pod.node.uplinkIp;
    default:
      return pod.labels[LABEL_FIELD_PATH.exec(fieldPath)?.[1] ?? ''] ?? '';
  }
}

/**
 * `weft …` runs this build of weft (with this Node), so the demo works without `weft` on PATH. The
 * paths put in are escaped: the result still goes through `expandArgv` (the pod runner does that).
 */
export function resolveArgv(argv: readonly string[]): string[] {
  if (argv[0] === 'weft') return [escapeVars(process.execPath), escapeVars(weftCliPath()), ...argv.slice(1)];
  return [...argv];
}

/** The node a pod belongs on: `spec.nodeName`, else the node whose CIDR holds its fixed IP, else none. */
export function nodeForPod(
  plan: LabPlan,
  nodeName: string | undefined,
  podIp: string | undefined,
): LabNodePlan | undefined {
  if (nodeName !== undefined) return labNode(plan, nodeName);
  if (podIp !== undefined) return plan.nodes.find((n) => cidrContains(n.podCidr, podIp));
  return undefined;
}

/** Problems that make a manifest unfit for this lab (after core/convert accepted it). */
export function labProblems(plan: LabPlan, manifest: JsonObject): LabProblem[] {
  if (manifest.kind === 'Pod') return podProblems(plan, manifest);
  if (manifest.kind === 'Service') return serviceProblems(plan, manifest);
  return [];
}

function podProblems(plan: LabPlan, manifest: JsonObject): LabProblem[] {
  const problems: LabProblem[] = [];
  const spec = isObject(manifest.spec) ? manifest.spec : {};
  const status = isObject(manifest.status) ? manifest.status : {};
  const nodeName = typeof spec.nodeName === 'string' ? spec.nodeName : undefined;
  const names = plan.nodes.map((n) => n.name).join(', ');
  if (nodeName !== undefined && labNode(plan, nodeName) === undefined)
    problems.push({
      field: 'spec.nodeName',
      reason: `must name a node of this lab (${names}), got ${shown(nodeName)}`,
    });
  const ip = typeof status.podIP === 'string' ? canonicalIp(status.podIP) : undefined;
  if (ip !== undefined) {
    const node = nodeForPod(plan, nodeName, ip);
    if (node === undefined && nodeName === undefined)
      problems.push({
        field: 'status.podIP',
        reason: `must be inside a node's pod CIDR (${plan.nodes.map((n) => n.podCidr.text).join(', ')}), got ${shown(ip)}`,
      });
    else if (node !== undefined) {
      const offset = (ipv4ToInt(ip) ?? 0) - node.podCidr.base;
      if (!cidrContains(node.podCidr, ip))
        problems.push({
          field: 'status.podIP',
          reason: `must be inside ${node.name}'s pod CIDR ${node.podCidr.text}, got ${shown(ip)}`,
        });
      else if (offset < FIRST_FIXED_POD_OFFSET || offset >= cidrSize(node.podCidr) - 1)
        problems.push({
          field: 'status.podIP',
          reason: `must not be the network, gateway (${node.gateway}) or broadcast address of ${node.podCidr.text}, got ${shown(ip)}`,
        });
    }
  }
  const run = readPodRunSpec(manifest);
  if ('reason' in run) problems.push(run);
  return problems;
}

function serviceProblems(plan: LabPlan, manifest: JsonObject): LabProblem[] {
  const spec = isObject(manifest.spec) ? manifest.spec : {};
  const ip = typeof spec.clusterIP === 'string' ? canonicalIp(spec.clusterIP) : undefined;
  if (ip === undefined || cidrContains(plan.serviceCidr, ip)) return [];
  return [
    {
      field: 'spec.clusterIP',
      reason: `must be inside the service CIDR ${plan.serviceCidr.text}, got ${shown(ip)}`,
    },
  ];
}
