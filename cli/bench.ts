// `weft bench ca|mesh|capture|load|tcp|serve`
import { runCaBench } from '../bench/ca-signing.js';
import { durationMsFlag, parseFlags, UsageError } from './flags.js';
import { benchHold, benchLoad, benchServe, intFlag, LOAD_USAGE } from './bench-load.js';
import { formatCompare, runMeshCompare } from '../bench/mesh-compare.js';
import { formatCaptureCost, runCaptureCost } from '../bench/capture-cost.js';

export const BENCH_USAGE = `weft bench ca [--requests 2000] [--concurrency 8] [--warmup 200] [--json]   CA signing rate and latency
weft bench mesh [--duration 10s] [--warmup 2s] [--json]   direct vs Weft vs HAProxy mTLS, two lab nodes (root)
weft bench capture [--duration 10s] [--warmup 2s] [--json]   direct vs captured passthrough vs mesh in a
               weft lab: the cost of transparent capture alone (root)
${LOAD_USAGE}`;

export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'load') return benchLoad(rest);
  if (sub === 'tcp') return benchLoad(rest, 'tcp');
  if (sub === 'serve') return benchServe(rest);
  if (sub === 'hold') return benchHold(rest);
  if (sub === 'mesh') return benchMesh(rest);
  if (sub === 'capture') return benchCapture(rest);
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

async function benchMesh(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    json: { type: 'boolean' },
  });
  const rows = await runMeshCompare({
    durationS: secondsToMs(f, 'duration', 10) / 1000,
    warmupS: secondsToMs(f, 'warmup', 2) / 1000,
    out: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(f.json === true ? JSON.stringify(rows) + '\n' : formatCompare(rows) + '\n');
  return 0;
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
