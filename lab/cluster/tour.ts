// `weft lab tour`: the README's walk through the demo, against a running `weft lab up --demo`. The
// client sends a request to echo before enrolment (direct: the agents see nothing), the namespace is
// enrolled by a label, the agents obtain both identities, and the same client, not restarted, sends the
// request again; the agents' access logs then say whether it went through the mesh and which SPIFFE
// identities the two ends proved. The lab keeps running afterwards for the user to try things.
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { DATAPLANE_MODE_AMBIENT, DATAPLANE_MODE_LABEL } from '../../core/model/namespace.js';
import { activeSource, labelNamespace } from './apply.js';
import { AGENT_READY_URL } from './control-plane.js';
import { planLab, type LabPlan } from './plan.js';
import { readLabState, type LabState, type PodState } from './state.js';

const execFileAsync = promisify(execFile);

/** Certificates arrive within a second or two of enrolment; this bounds the wait. */
const ENROL_TIMEOUT_MS = 20_000;
const POLL_MS = 200;
const AGENT_ADMIN_URL = 'http://127.0.0.1:15000/config_dump';
/** The access log needs a moment after the response to be written (at connection close). */
const ACCESS_LOG_WAIT_MS = 2000;

interface EchoAnswer {
  readonly pod: string;
  readonly version: string;
  readonly peer: { readonly address: string };
}

interface AccessLine {
  readonly node: string;
  readonly direction?: string;
  readonly 'src.addr'?: string;
  readonly 'src.identity'?: string;
  readonly 'dst.addr'?: string;
  readonly 'dst.identity'?: string;
  readonly response_flags?: string;
}

export interface TourResult {
  readonly meshed: boolean;
}

export async function runTour(dir: string, out: (line: string) => void): Promise<TourResult> {
  const state = readLabState(dir);
  if (state === undefined || state.phase !== 'ready')
    throw new Error(`no ready lab in ${dir}: weft lab up --demo first`);
  const plan = planLab(state.options);
  const client = demoPod(state, 'client');
  const echo = demoPod(state, 'echo-v2');
  const url = `http://${echo.ip}:8080/tour`;

  const source = activeSource(undefined, dir);
  const reset = labelNamespace(source, 'default', [{ key: DATAPLANE_MODE_LABEL, value: null }]);
  if (reset.action !== 'unchanged') {
    out(`0. enrolled by an earlier run: weft label namespace default ${DATAPLANE_MODE_LABEL}-`);
    await waitForEnrolment(state, [client, echo], false);
  }
  out(`1. ${describe(client)} → ${describe(echo)}, namespace not enrolled`);
  let offsets = logOffsets(plan);
  let answer = await curl(client, url);
  out(`   echo answered: pod ${answer.pod} (${answer.version}), peer ${answer.peer.address}`);
  await sleep(ACCESS_LOG_WAIT_MS / 4);
  const seen = accessLines(plan, offsets, client, echo).length;
  out(`   the agents saw ${seen} connection(s)${seen === 0 ? ': the request went direct' : ''}`);

  out(`2. weft label namespace default ${DATAPLANE_MODE_LABEL}=${DATAPLANE_MODE_AMBIENT}`);
  labelNamespace(source, 'default', [{ key: DATAPLANE_MODE_LABEL, value: DATAPLANE_MODE_AMBIENT }]);
  await waitForEnrolment(state, [client, echo], true);
  const identities = await waitForIdentities(state, [
    [client.node, 'client'],
    [echo.node, 'echo'],
  ]);
  for (const [node, id] of identities) out(`   ${node} agent: enrolled, certificate for ${id}`);

  out(`3. the same client (not restarted) → ${url} again`);
  offsets = logOffsets(plan);
  answer = await curl(client, url);
  out(`   echo answered: pod ${answer.pod} (${answer.version}), peer ${answer.peer.address}`);
  const deadline = Date.now() + ACCESS_LOG_WAIT_MS;
  let lines = accessLines(plan, offsets, client, echo);
  while (lines.length < 2 && Date.now() < deadline) {
    await sleep(POLL_MS);
    lines = accessLines(plan, offsets, client, echo);
  }
  for (const l of lines)
    out(
      `   ${l.node} agent, ${l.direction ?? '?'}: ${l['src.identity'] ?? '-'} → ${l['dst.identity'] ?? '-'} (flags ${l.response_flags ?? '-'})`,
    );
  const meshed = lines.some((l) => l['src.identity'] !== undefined && l['dst.identity'] !== undefined);
  out(
    meshed
      ? '   ✔ carried through the mesh: mutual TLS between the agents, both identities proved'
      : '   ✗ the agents did not carry it: traffic capture is not active in this build, so it went direct',
  );
  out('');
  out('The lab keeps running. Try:');
  out(`  weft lab exec default/client -- curl -s -H 'x-echo-status: 503' ${url}`);
  out(`  weft lab exec ${echo.node} -- curl -s http://127.0.0.1:15000/config_dump`);
  out(`  weft label namespace default ${DATAPLANE_MODE_LABEL}-      (un-enrol: direct again)`);
  out('  weft lab status; weft lab down');
  return { meshed };
}

function describe(pod: PodState): string {
  return `${pod.namespace}/${pod.name} (${pod.ip}, ${pod.node})`;
}

function demoPod(state: LabState, name: string): PodState {
  const pod = state.pods.find((p) => p.namespace === 'default' && p.name === name);
  if (pod === undefined || pod.netns === '')
    throw new Error(`pod default/${name} is not running: the tour needs weft lab up --demo`);
  return pod;
}

async function curl(pod: PodState, url: string): Promise<EchoAnswer> {
  const { stdout } = await execFileAsync('ip', [
    'netns',
    'exec',
    pod.netns,
    'curl',
    '-sf',
    '--max-time',
    '5',
    url,
  ]);
  return JSON.parse(stdout) as EchoAnswer;
}

function logOffsets(plan: LabPlan): Map<string, number> {
  return new Map(
    plan.nodes.map((n) => [n.agentLog, statSync(n.agentLog, { throwIfNoEntry: false })?.size ?? 0]),
  );
}

/** `connection complete` lines written since `offsets` that involve the client or the echo pod. */
function accessLines(
  plan: LabPlan,
  offsets: Map<string, number>,
  client: PodState,
  echo: PodState,
): AccessLine[] {
  const found: AccessLine[] = [];
  for (const node of plan.nodes) {
    let text: string;
    try {
      text = readFileSync(node.agentLog)
        .subarray(offsets.get(node.agentLog) ?? 0)
        .toString('utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.includes('"connection complete"')) continue;
      try {
        const entry = JSON.parse(line) as Omit<AccessLine, 'node'>;
        const involved = [entry['src.addr'], entry['dst.addr']].some(
          (a) => a?.startsWith(`${client.ip}:`) || a?.startsWith(`${echo.ip}:`),
        );
        if (involved) found.push({ ...entry, node: node.name });
      } catch {
        // not a log line of ours
      }
    }
  }
  return found;
}

async function configDump(state: LabState, node: string): Promise<ConfigDump> {
  const netns = state.nodes.find((n) => n.name === node)?.netns;
  if (netns === undefined) throw new Error(`no node ${node}`);
  const { stdout } = await execFileAsync('ip', [
    'netns',
    'exec',
    netns,
    'curl',
    '-sf',
    '--max-time',
    '2',
    AGENT_ADMIN_URL,
  ]);
  return JSON.parse(stdout) as ConfigDump;
}

interface ConfigDump {
  readonly workloads: readonly {
    readonly namespace: string;
    readonly name: string;
    readonly enrolled: boolean;
  }[];
  readonly certificates: readonly { readonly spiffeId: string; readonly state: string }[];
}

/** Waits until the agents of `pods` report them enrolled (or not). */
async function waitForEnrolment(
  state: LabState,
  pods: readonly PodState[],
  enrolled: boolean,
): Promise<void> {
  const deadline = Date.now() + ENROL_TIMEOUT_MS;
  while (Date.now() < deadline) {
    let done = true;
    for (const pod of pods) {
      const dump = await configDump(state, pod.node).catch(() => undefined);
      const w = dump?.workloads.find((x) => x.namespace === pod.namespace && x.name === pod.name);
      if (w?.enrolled !== enrolled) done = false;
    }
    if (done) return;
    await sleep(POLL_MS);
  }
  throw new Error(
    `the agents did not see ${pods.map((p) => p.name).join(', ')} ${enrolled ? 'enrolled' : 'un-enrolled'} within ${ENROL_TIMEOUT_MS} ms`,
  );
}

/** Waits until each named node's agent holds an available certificate for the service account. */
async function waitForIdentities(
  state: LabState,
  wanted: readonly (readonly [string, string])[],
): Promise<[string, string][]> {
  const deadline = Date.now() + ENROL_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const held: [string, string][] = [];
    for (const [node, sa] of wanted) {
      const netns = state.nodes.find((n) => n.name === node)?.netns;
      if (netns === undefined) continue;
      try {
        const { stdout } = await execFileAsync('ip', [
          'netns',
          'exec',
          netns,
          'curl',
          '-sf',
          '--max-time',
          '2',
          AGENT_ADMIN_URL,
        ]);
        const dump = JSON.parse(stdout) as { certificates: { spiffeId: string; state: string }[] };
        const cert = dump.certificates.find(
          (c) => c.spiffeId.endsWith(`/ns/default/sa/${sa}`) && c.state === 'available',
        );
        if (cert !== undefined) held.push([node, cert.spiffeId]);
      } catch (err) {
        last = String(err);
      }
    }
    if (held.length === wanted.length) return held;
    await sleep(POLL_MS);
  }
  throw new Error(
    `the agents did not obtain ${wanted.map(([n, sa]) => `${sa} on ${n}`).join(', ')} within ${ENROL_TIMEOUT_MS} ms ${last} (is ${AGENT_READY_URL} ready?)`,
  );
}
