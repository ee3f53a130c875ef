// `weft observe`: the flows of every agent and waypoint, listed or followed live, filtered as Hubble's
// are; `weft observe map` (who talks to whom) and `weft observe suggest` (least-privilege policies from
// what was seen) read the same flows, or a file saved with `-o json`.
import { writeFileSync } from 'node:fs';
import { flowEventJson, type FlowEvent } from '../core/flows/event.js';
import {
  compileFlowFilter,
  FLOW_FILTER_FIELDS,
  parseFlowFilter,
  type FlowFilter,
} from '../core/flows/filter.js';
import { followFlows } from '../observe/follow.js';
import { collectFlows } from '../observe/collect.js';
import { flowTable, lostRow, streamHeader, streamLine } from '../observe/format.js';
import { labFlowTargets, parseFlowTarget, type FlowTarget } from '../observe/targets.js';
import {
  AGENT_POD_SELECTOR,
  DEFAULT_WEFT_NAMESPACE,
  KubernetesFlowTargets,
  WAYPOINT_POD_SELECTOR,
} from '../observe/kubernetes-targets.js';
import { kubernetesCredentialsOf } from '../core/sources/index.js';
import { countFlag, durationMsFlag, parseFlagsAndArgs, UsageError, type FlagSpec } from './flags.js';
import { labDirFlag } from './lab-dir.js';

export const OBSERVE_USAGE = `weft observe [-f|--follow] [--last 20] [-o text|json] [--duration 10s] ${'[FILTERS] [SOURCE]'}
               the flows of every agent and waypoint: the recent ones, or (-f) live until Ctrl-C or --duration
weft observe map [-o text|svg|html] [--out FILE] [--duration 10s] [--from-file FLOWS.jsonl] [FILTERS] [SOURCE]
               who talks to whom: requests or connections per second, error rate, denials, p99 latency
weft observe suggest [--out FILE] [--duration 10s] [--from-file FLOWS.jsonl] [FILTERS] [SOURCE]
               least-privilege AuthorizationPolicies that allow exactly the flows seen (for review)
  FILTERS: --namespace NS --pod [NS/]POD --identity ID --verdict ALLOWED|DENIED|ERROR --protocol tcp|http|grpc
           --port N --type open|close|request   (each repeatable or comma-separated: any may match;
           different filters must all match)
  SOURCE:  the lab's agents and waypoints (--dir DIR); or a cluster's, each through a port-forward to its
           admin port 15000: --config kubernetes[:KUBECONFIG] [--weft-namespace ${DEFAULT_WEFT_NAMESPACE}] (where
           the agents run; waypoints in any namespace); or --target HOST:PORT|unix:PATH (repeatable: admin
           endpoints). --target comes first; --config file:DIR names only the config map and suggest read`;

export interface ObserveIo {
  out(text: string): void;
  err(line: string): void;
  /** Ends a follow as Ctrl-C does (tests; the process's own signals are always heeded). */
  readonly interrupt?: AbortSignal;
}

const PROCESS_IO: ObserveIo = {
  out: (text) => void process.stdout.write(text),
  err: (line) => void process.stderr.write(`${line}\n`),
};

const FILTER_FLAGS: FlagSpec = Object.fromEntries(
  FLOW_FILTER_FIELDS.map((f) => [f, { type: 'string', multiple: true }]),
) as FlagSpec;

const SOURCE_FLAGS: FlagSpec = {
  dir: { type: 'string' },
  target: { type: 'string', multiple: true },
  config: { type: 'string' },
  'weft-namespace': { type: 'string' },
};

const DEFAULT_LAST = 20;

function filterOf(values: Record<string, unknown>): FlowFilter {
  const entries: [string, string][] = [];
  for (const field of FLOW_FILTER_FIELDS) {
    const v = values[field];
    if (Array.isArray(v)) for (const item of v as string[]) entries.push([field, item]);
  }
  try {
    return parseFlowFilter(entries);
  } catch (err) {
    throw new UsageError(`--${(err as Error).message}`);
  }
}

/** One per command line: a follow discovers again every second, with the same credentials. */
const clusters = new WeakMap<Record<string, unknown>, KubernetesFlowTargets>();

/** --target's endpoints, else a cluster's pods (--config kubernetes[:KUBECONFIG]), else the lab's sockets. */
async function targetsOf(values: Record<string, unknown>): Promise<FlowTarget[]> {
  const given = values.target;
  if (Array.isArray(given) && given.length > 0)
    return (given as string[]).map((t) => {
      try {
        return parseFlowTarget(t);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    });
  const config = values.config;
  if (typeof config === 'string' && !config.startsWith('file:')) {
    const credentials = kubernetesCredentialsOf(config);
    if (credentials === undefined)
      throw new UsageError(`--config ${config}: expected kubernetes or kubernetes:KUBECONFIG (or file:DIR)`);
    const namespace = values['weft-namespace'];
    const weftNamespace = typeof namespace === 'string' ? namespace : DEFAULT_WEFT_NAMESPACE;
    let cluster = clusters.get(values);
    if (cluster === undefined) {
      cluster = new KubernetesFlowTargets({
        kubeconfigPath: credentials.path,
        weftNamespace,
        user: `--config ${config}`,
      });
      clusters.set(values, cluster);
    }
    const pods = await cluster.list();
    if (pods.length === 0)
      throw new Error(
        `no running agent pods (${AGENT_POD_SELECTOR}) in ${weftNamespace} nor waypoint pods ` +
          `(${WAYPOINT_POD_SELECTOR}): is Weft installed in ${weftNamespace} (--weft-namespace)?`,
      );
    return pods;
  }
  const targets = labFlowTargets(labDirFlag(values));
  if (targets.length === 0)
    throw new Error(`no agent or waypoint admin sockets in the lab at ${labDirFlag(values)}`);
  return targets;
}

function outputFlag<T extends string>(values: Record<string, unknown>, allowed: readonly T[]): T {
  const v = values.output ?? allowed[0];
  if (!(allowed as readonly unknown[]).includes(v))
    throw new UsageError(`-o/--output: expected ${allowed.join(' or ')}, got ${String(v)}`);
  return v as T;
}

/** Ends a follow on Ctrl-C (and on --duration, or `interrupt`); the process exits normally with what it printed. */
function interruptSignal(durationMs: number | undefined, interrupt?: AbortSignal): AbortSignal {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  interrupt?.addEventListener('abort', stop);
  if (interrupt?.aborted === true) stop();
  if (durationMs !== undefined) setTimeout(stop, durationMs).unref();
  controller.signal.addEventListener('abort', () => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    interrupt?.removeEventListener('abort', stop);
  });
  return controller.signal;
}

async function listCommand(argv: string[], io: ObserveIo): Promise<number> {
  const { values, positionals } = parseFlagsAndArgs(argv, {
    ...FILTER_FLAGS,
    ...SOURCE_FLAGS,
    follow: { type: 'boolean', short: 'f' },
    last: { type: 'string' },
    output: { type: 'string', short: 'o' },
    duration: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected ${positionals.join(' ')}\n\n${OBSERVE_USAGE}`);
  const filter = filterOf(values);
  const output = outputFlag(values, ['text', 'json'] as const);
  const targets = await targetsOf(values);
  const follow = values.follow === true;
  const last = countFlag(values, 'last', follow ? 0 : DEFAULT_LAST);
  if (!follow) {
    const { events, lost, failures } = await collectFlows(
      targets,
      { filter, follow: false, last },
      undefined,
    );
    for (const f of failures) io.err(`weft: ${f.target.name}: ${f.error.message}`);
    if (failures.length === targets.length) return 1;
    const shown = events.slice(-last);
    if (output === 'json') io.out(shown.map(flowEventJson).join(''));
    else {
      for (const l of lost) io.err(lostRow(l));
      io.out(flowTable(shown).join('\n') + '\n');
    }
    return 0;
  }
  const signal = interruptSignal(
    values.duration === undefined ? undefined : durationMsFlag(values, 'duration', 0),
    io.interrupt,
  );
  if (output === 'text') io.out(streamHeader() + '\n');
  // Each target's lines are printed as they come (near enough in time order for a live view); targets
  // that appear later (a new waypoint, a restarted agent) are picked up by the rescans.
  await followFlows(
    () => targetsOf(values),
    { filter, last },
    {
      line: (line) => {
        if (line.type === 'lost')
          return output === 'json' ? io.out(JSON.stringify(line) + '\n') : io.err(lostRow(line));
        io.out(output === 'json' ? flowEventJson(line) : streamLine(line) + '\n');
      },
      failed: (t, error) => io.err(`weft: ${t.name}: ${error.message}`),
    },
    signal,
    (error) => io.err(`weft: ${error.message}`),
  );
  return 0;
}

/** The flows `map` and `suggest` read: a saved file, or the live targets (their rings, or --duration of follow). */
export async function flowsForAnalysis(values: Record<string, unknown>, io: ObserveIo): Promise<FlowEvent[]> {
  const filter = filterOf(values);
  if (typeof values['from-file'] === 'string') {
    const { readFlowFile } = await import('../observe/flow-file.js');
    const keep = compileFlowFilter(filter);
    return readFlowFile(values['from-file']).events.filter(keep);
  }
  const targets = await targetsOf(values);
  const followMs = values.duration === undefined ? undefined : durationMsFlag(values, 'duration', 0);
  const follow = followMs !== undefined;
  const { events, failures } = await collectFlows(
    targets,
    { filter, follow, last: follow ? 0 : Number.MAX_SAFE_INTEGER },
    followMs,
    follow ? interruptSignal(undefined, io.interrupt) : undefined,
  );
  for (const f of failures) io.err(`weft: ${f.target.name}: ${f.error.message}`);
  if (failures.length === targets.length) throw new Error('no agent or waypoint could be read');
  return events;
}

export const ANALYSIS_FLAGS: FlagSpec = {
  ...FILTER_FLAGS,
  ...SOURCE_FLAGS,
  'from-file': { type: 'string' },
  duration: { type: 'string' },
  out: { type: 'string' },
  output: { type: 'string', short: 'o' },
};

/** Writes `text` to --out FILE, or to standard output. */
export function emit(values: Record<string, unknown>, text: string, io: ObserveIo): void {
  if (typeof values.out === 'string') {
    writeFileSync(values.out, text);
    io.err(`wrote ${values.out}`);
  } else io.out(text);
}

export async function observeCommand(argv: string[], io: ObserveIo = PROCESS_IO): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'map': {
      const { mapCommand } = await import('./observe-map.js');
      return mapCommand(rest, io);
    }
    case 'suggest': {
      const { suggestCommand } = await import('./observe-map.js');
      return suggestCommand(rest, io);
    }
    case 'help':
    case '--help':
    case '-h':
      io.out(`${OBSERVE_USAGE}\n`);
      return 0;
    default:
      return listCommand(argv, io);
  }
}
