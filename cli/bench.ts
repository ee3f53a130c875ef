// `weft bench ca|compare|capture|observe|chaos|agree|load|tcp|hold|serve|kube-scale`
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runCaBench } from '../bench/ca-signing.js';
import { runCompare } from '../bench/compare.js';
import { renderCompareHtml } from '../bench/report/html.js';
import { formatCompareMarkdown } from '../bench/report/markdown.js';
import { durationMsFlag, parseFlags, stringFlag, UsageError } from './flags.js';
import { benchHold, benchLoad, benchServe, intFlag, LOAD_USAGE } from './bench-load.js';
import { AGREE_USAGE, benchAgree } from './bench-agree.js';
import { formatCaptureCost, runCaptureCost } from '../bench/capture-cost.js';
import { formatKubeScale, KUBE_SCALE_DEFAULTS, runKubeScale } from '../bench/kube-scale.js';
import { runObserveCost } from '../bench/observe-cost.js';
import { formatObserveCost } from '../bench/observe-cost/format.js';
import { runChaos, type ChaosOptions } from '../bench/chaos.js';
import type { ChaosMode } from '../bench/chaos/analysis.js';
import { runChaosClient } from '../bench/chaos/client.js';
import { formatChaos } from '../bench/chaos/format.js';
import { parseHostPort } from '../core/address.js';

export const BENCH_USAGE = `weft bench ca [--requests 2000] [--concurrency 8] [--warmup 200] [--json]   CA signing rate and latency
weft bench compare [--duration 30s] [--warmup 5s] [--idle-connections 10000] [--quick] [--out DIR] [--json]
               the quoted scenarios (a)-(e) over direct, mesh, waypoint and an HAProxy mTLS pair in a weft
               lab (root); writes DIR/report.json and DIR/report.html (default bench/results), prints Markdown
weft bench capture [--duration 10s] [--warmup 2s] [--json]   direct vs captured passthrough vs mesh in a
               weft lab: the cost of transparent capture alone (root)
weft bench observe [--duration 10s] [--warmup 2s] [--rounds 2] [--readers 8] [--out DIR] [--json]
               what /flows readers cost the agents (root; a weft lab with the demo): the same load with
               no readers, stalled, fast and slow readers (--readers per agent, at most 16), interleaved
               per round; live memory after a full GC through each agent's inspector (opened with
               SIGUSR1), RSS, CPU; ratios to no readers and the pass/fail criteria; with --out writes
               DIR/observe-cost.json. Exit 1: the check failed (not measured as claimed); 2: a criterion
               failed
weft bench chaos [--mode restart|kill|both] [--duration 60s] [--gap 5s] [--warmup 3s] [--rate 1000]
               [--connections 64] [--new-rate 200] [--streams 50] [--out DIR] [--json] [--no-realtime]
               the mesh's parts replaced under load (root; a weft lab with the demo and a waypoint): from the
               client pod to echo-v2, keep-alive HTTP/1.1 at --rate (retrying as clients do), a new
               connection per request at --new-rate, --streams long-lived echo connections and a 50 ms
               probe, while node-1's agent, node-2's agent and the waypoint are restarted (restart) or
               SIGKILLed (kill) one after another, spread over --duration, --gap apart at least; tcpdump on
               the node uplinks and the waypoint pod looks for the run's marker (plaintext). Reports requests, failures,
               retries, latency per event window, long-lived connections kept or closed, outages (kill);
               with --out writes DIR/chaos-<mode>.json; the client runs under chrt -f unless --no-realtime
               (for a machine shared with other jobs). Exit 1: the check failed (not measured as
               claimed); 2: a target was missed
weft bench chaos-client --http HOST:PORT --tcp HOST:PORT --marker TEXT [--rate 1000] [--connections 64]
               [--new-rate 200] [--streams 50] [--stream-interval 100ms] [--probe-interval 50ms]
               [--probe-timeout 500ms] [--warmup 3s] [--max-duration 10m]
               what bench chaos runs in the client pod: prints {"started":…} once warm, then runs until
               SIGINT/SIGTERM (or --max-duration) and prints {"result":…} with every request's timeline
${LOAD_USAGE}
${AGREE_USAGE}
weft bench kube-scale [--pods 100000] [--services 10000] [--churn-seconds 60] [--rate 100]
               [--sample-seconds 5] [--namespaces N] [--nodes N] [--seed 1] [--no-reference]
               [--consumer-heap-mib MiB] [--heap-snapshot FILE] [--out DIR] [--json]
               the agent's config path from the API server double at cluster scale: sync, churn at
               --rate writes/s, relist, against the same set through file: (and a 100x smaller
               cluster for CPU per write); writes DIR/kube-scale.json (default bench/results)`;

export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'load') return benchLoad(rest);
  if (sub === 'tcp') return benchLoad(rest, 'tcp');
  if (sub === 'serve') return benchServe(rest);
  if (sub === 'hold') return benchHold(rest);
  if (sub === 'compare') return benchCompare(rest);
  if (sub === 'agree') return benchAgree(rest);
  if (sub === 'capture') return benchCapture(rest);
  if (sub === 'observe') return benchObserve(rest);
  if (sub === 'chaos') return benchChaos(rest);
  if (sub === 'chaos-client') return benchChaosClient(rest);
  if (sub === 'kube-scale') return benchKubeScale(rest);
  if (sub !== 'ca') throw new UsageError(BENCH_USAGE);
  const f = parseFlags(rest, {
    requests: { type: 'string' },
    concurrency: { type: 'string' },
    warmup: { type: 'string' },
    json: { type: 'boolean' },
  });
  const result = await runCaBench({
    requests: intFlag(f, 'requests', 2000, 1_000_000),
    concurrency: intFlag(f, 'concurrency', 8, 1024),
    warmup: intFlag(f, 'warmup', 200, 1_000_000),
  });
  if (f.json === true) {
    process.stdout.write(JSON.stringify(result) + '\n');
  } else {
    const l = result.latencyMs;
    process.stdout.write(
      [
        `| requests | concurrency | certs/s | p50 ms | p90 ms | p99 ms | max ms | errors | CA CPU s / 1000 certs | CA RSS MiB |`,
        `|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
        `| ${result.requests} | ${result.concurrency} | ${result.certsPerSecond} | ${l.p50} | ${l.p90} | ${l.p99} | ${l.max} | ${result.errors} | ${result.caCpuSecondsPer1000} | ${result.caRssMiB} |`,
      ].join('\n') + '\n',
    );
  }
  return result.errors === 0 ? 0 : 1;
}

function secondsToMs(values: Record<string, unknown>, name: string, fallbackS: number): number {
  return durationMsFlag(values, name, fallbackS * 1000);
}

async function benchCapture(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    json: { type: 'boolean' },
  });
  const durationS = secondsToMs(f, 'duration', 10) / 1000;
  const warmupS = secondsToMs(f, 'warmup', 2) / 1000;
  if (process.getuid?.() !== 0) throw new Error('weft bench capture needs root (it builds a weft lab)');
  const result = await runCaptureCost({
    durationS,
    warmupS,
    out: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(f.json === true ? JSON.stringify(result) + '\n' : formatCaptureCost(result) + '\n');
  if (result.check.passed) return 0;
  process.stderr.write(
    `weft: CAPTURE CHECK FAILED: the figures do not measure what they claim\n${result.check.problems.map((p) => `  ${p}\n`).join('')}`,
  );
  return 1;
}

async function benchObserve(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    readers: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  const durationS = secondsToMs(f, 'duration', 10) / 1000;
  const warmupS = secondsToMs(f, 'warmup', 2) / 1000;
  const rounds = intFlag(f, 'rounds', 2, 100);
  // An agent serves at most 16 flow readers at once (core/flows/ring.ts); more would be refused.
  const readersPerAgent = intFlag(f, 'readers', 8, 16);
  if (process.getuid?.() !== 0) throw new Error('weft bench observe needs root (it builds a weft lab)');
  const result = await runObserveCost({
    durationS,
    warmupS,
    rounds,
    readersPerAgent,
    command: ['weft', 'bench', 'observe', ...argv].join(' '),
    out: (line) => process.stderr.write(`${line}\n`),
  });
  if (typeof f.out === 'string') {
    const outDir = resolve(f.out);
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'observe-cost.json'), `${JSON.stringify(result, null, 2)}\n`);
    process.stderr.write(`report: ${join(outDir, 'observe-cost.json')}\n`);
  }
  process.stdout.write(f.json === true ? `${JSON.stringify(result)}\n` : `${formatObserveCost(result)}\n`);
  if (!result.check.passed) {
    process.stderr.write(
      `weft: OBSERVE CHECK FAILED: the figures do not measure what they claim\n${result.check.problems.map((p) => `  ${p}\n`).join('')}`,
    );
    return 1;
  }
  if (result.disturbed.length > 0)
    process.stderr.write(
      `weft: bench observe: other work disturbed ${result.disturbed.length} run(s); the ratios are unsafe:\n${result.disturbed.map((d) => `  ${d}\n`).join('')}`,
    );
  if (!result.criteriaPassed) {
    const failed = result.criteria.filter((c) => !c.passed);
    process.stderr.write(
      `weft: bench observe: ${failed.length} criterion/criteria failed\n${failed.map((c) => `  ${c.mode}: ${c.what} = ${c.value} (${c.bound})\n`).join('')}`,
    );
    return 2;
  }
  return 0;
}

async function benchCompare(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'idle-connections': { type: 'string' },
    quick: { type: 'boolean' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (process.getuid?.() !== 0) throw new Error('weft bench compare needs root (it builds a weft lab)');
  const quick = f.quick === true;
  const outDir = resolve(typeof f.out === 'string' ? f.out : 'bench/results');
  mkdirSync(outDir, { recursive: true });
  const report = await runCompare({
    durationS: durationMsFlag(f, 'duration', quick ? 3000 : 30_000) / 1000,
    warmupS: durationMsFlag(f, 'warmup', quick ? 1000 : 5000) / 1000,
    idleConnections: intFlag(f, 'idle-connections', quick ? 1000 : 10_000, 15_000),
    outDir,
    command: ['weft', 'bench', 'compare', ...argv].join(' '),
    out: (line) => process.stderr.write(`${line}\n`),
  });
  writeFileSync(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'report.html'), renderCompareHtml(report));
  process.stderr.write(`report: ${join(outDir, 'report.html')} (data: report.json)\n`);
  process.stdout.write(
    f.json === true ? `${JSON.stringify(report)}\n` : `${formatCompareMarkdown(report)}\n`,
  );
  const failed = report.scenarios.flatMap((s) => s.runs.filter((r) => r.error !== undefined));
  return failed.length === 0 ? 0 : 1;
}

async function benchKubeScale(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    pods: { type: 'string' },
    services: { type: 'string' },
    namespaces: { type: 'string' },
    nodes: { type: 'string' },
    seed: { type: 'string' },
    'churn-seconds': { type: 'string' },
    rate: { type: 'string' },
    'sample-seconds': { type: 'string' },
    'no-reference': { type: 'boolean' },
    'consumer-heap-mib': { type: 'string' },
    'heap-snapshot': { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  const pods = intFlag(f, 'pods', KUBE_SCALE_DEFAULTS.pods, 1_000_000);
  const services = intFlag(f, 'services', KUBE_SCALE_DEFAULTS.services, pods);
  const optionalInt = (name: string, max: number): number | undefined =>
    f[name] === undefined ? undefined : intFlag(f, name, 1, max);
  const outDir = resolve(typeof f.out === 'string' ? f.out : 'bench/results');
  mkdirSync(outDir, { recursive: true });
  const report = await runKubeScale({
    pods,
    services,
    namespaces: optionalInt('namespaces', services),
    nodes: optionalInt('nodes', pods),
    seed: intFlag(f, 'seed', KUBE_SCALE_DEFAULTS.seed, 2 ** 31),
    churnSeconds: intFlag(f, 'churn-seconds', KUBE_SCALE_DEFAULTS.churnSeconds, 3600),
    rate: intFlag(f, 'rate', KUBE_SCALE_DEFAULTS.rate, 10_000),
    sampleSeconds: intFlag(f, 'sample-seconds', KUBE_SCALE_DEFAULTS.sampleSeconds, 3600),
    reference: f['no-reference'] !== true,
    consumerHeapMiB: optionalInt('consumer-heap-mib', 65_536),
    heapSnapshot: typeof f['heap-snapshot'] === 'string' ? resolve(f['heap-snapshot']) : undefined,
    command: ['weft', 'bench', 'kube-scale', ...argv].join(' '),
    out: (line) => process.stderr.write(`${line}\n`),
  });
  writeFileSync(join(outDir, 'kube-scale.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(`report: ${join(outDir, 'kube-scale.json')}\n`);
  process.stdout.write(f.json === true ? `${JSON.stringify(report)}\n` : `${formatKubeScale(report)}\n`);
  return 0;
}

/** Writes to stdout and resolves once the write was handed to the OS. */
function writeStdout(text: string): Promise<void> {
  return new Promise((resolve, reject) =>
    process.stdout.write(text, (err) => (err ? reject(err) : resolve())),
  );
}

const CHAOS_MODES: Record<string, readonly ChaosMode[]> = {
  restart: ['restart'],
  kill: ['kill'],
  both: ['restart', 'kill'],
};

async function benchChaos(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    mode: { type: 'string' },
    duration: { type: 'string' },
    gap: { type: 'string' },
    warmup: { type: 'string' },
    rate: { type: 'string' },
    connections: { type: 'string' },
    'new-rate': { type: 'string' },
    streams: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
    'no-realtime': { type: 'boolean' },
  });
  const modeName = stringFlag(f, 'mode', 'restart');
  const modes = CHAOS_MODES[modeName];
  if (modes === undefined) throw new UsageError(`--mode: expected restart, kill or both, got ${modeName}`);
  const options: ChaosOptions = {
    modes,
    durationMs: durationMsFlag(f, 'duration', 60_000),
    gapMs: durationMsFlag(f, 'gap', 5000),
    warmupMs: durationMsFlag(f, 'warmup', 3000),
    keepAliveRate: intFlag(f, 'rate', 1000, 100_000),
    keepAliveConnections: intFlag(f, 'connections', 64, 10_000),
    newConnectionRate: intFlag(f, 'new-rate', 200, 10_000),
    streams: intFlag(f, 'streams', 50, 10_000),
    streamIntervalMs: 100,
    probeIntervalMs: 50,
    probeTimeoutMs: 500,
    realtime: f['no-realtime'] !== true,
    command: ['weft', 'bench', 'chaos', ...argv].join(' '),
    out: (line) => process.stderr.write(`${line}\n`),
  };
  if (process.getuid?.() !== 0) throw new Error('weft bench chaos needs root (it builds a weft lab)');
  const report = await runChaos(options);
  if (typeof f.out === 'string') {
    const outDir = resolve(f.out);
    mkdirSync(outDir, { recursive: true });
    for (const scenario of report.scenarios) {
      const file = join(outDir, `chaos-${scenario.mode}.json`);
      const { scenarios: _all, ...common } = report;
      writeFileSync(file, `${JSON.stringify({ ...common, scenario }, null, 2)}\n`);
      process.stderr.write(`report: ${file}\n`);
    }
  }
  // Flushed before returning: the exit code below ends the process at once, and a pipe may still hold
  // part of a large result.
  await writeStdout(f.json === true ? `${JSON.stringify(report)}\n` : `${formatChaos(report)}\n`);
  const unchecked = report.scenarios.filter((s) => !s.check.passed);
  if (unchecked.length > 0) {
    process.stderr.write(
      `weft: CHAOS CHECK FAILED: the figures do not measure what they claim\n${unchecked
        .flatMap((s) => s.check.problems.map((p) => `  ${s.mode}: ${p}\n`))
        .join('')}`,
    );
    return 1;
  }
  const missed = report.scenarios.flatMap((s) => s.criteria.filter((c) => !c.passed).map((c) => ({ s, c })));
  if (missed.length > 0) {
    process.stderr.write(
      `weft: bench chaos: ${missed.length} target(s) missed\n${missed.map(({ s, c }) => `  ${s.mode}: ${c.what} = ${c.value} (${c.bound})\n`).join('')}`,
    );
    return 2;
  }
  return 0;
}

async function benchChaosClient(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    http: { type: 'string' },
    tcp: { type: 'string' },
    marker: { type: 'string' },
    rate: { type: 'string' },
    connections: { type: 'string' },
    'new-rate': { type: 'string' },
    streams: { type: 'string' },
    'stream-interval': { type: 'string' },
    'probe-interval': { type: 'string' },
    'probe-timeout': { type: 'string' },
    warmup: { type: 'string' },
    'max-duration': { type: 'string' },
  });
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await runChaosClient({
      http: parseHostPort(stringFlag(f, 'http'), '--http'),
      tcp: parseHostPort(stringFlag(f, 'tcp'), '--tcp'),
      marker: stringFlag(f, 'marker'),
      keepAliveRate: intFlag(f, 'rate', 1000, 100_000),
      keepAliveConnections: intFlag(f, 'connections', 64, 10_000),
      newConnectionRate: intFlag(f, 'new-rate', 200, 10_000),
      streams: intFlag(f, 'streams', 50, 10_000, 0),
      streamIntervalMs: durationMsFlag(f, 'stream-interval', 100),
      probeIntervalMs: durationMsFlag(f, 'probe-interval', 50),
      probeTimeoutMs: durationMsFlag(f, 'probe-timeout', 500),
      warmupMs: durationMsFlag(f, 'warmup', 3000),
      maxDurationMs: durationMsFlag(f, 'max-duration', 600_000),
      onStarted: (started) => void process.stdout.write(`${JSON.stringify({ started })}\n`),
      signal: stop.signal,
    });
    await writeStdout(`${JSON.stringify({ result })}\n`);
    // Its result is out: nothing it opened may keep it running (under chrt -f, a leftover busy handle
    // would hold a CPU above every normal process, the mesh included).
    process.exit(0);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
