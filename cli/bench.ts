// `weft bench ca`
import { runCaBench } from '../bench/ca-signing.js';
import { parseFlags, UsageError } from './flags.js';

export const BENCH_USAGE = `weft bench ca [--requests 2000] [--concurrency 8] [--warmup 200] [--json]   CA signing rate and latency`;

function intFlag(values: Record<string, unknown>, name: string, fallback: number, max: number): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(`--${name}: expected an integer 1..${max}, got ${String(v)}`);
  return n;
}

export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
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
