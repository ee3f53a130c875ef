// `weft bench ca|mesh|capture|tcp|serve`
import { runCaBench } from '../bench/ca-signing.js';
import { durationMsFlag, hostPortFlag, parseFlags, untilSignal, UsageError } from './flags.js';
import { runBulk, runTcpLoad } from '../bench/tcp-load.js';
import { startDiscardServer, startEchoServer } from '../bench/tcp-servers.js';
import { formatCompare, runMeshCompare } from '../bench/mesh-compare.js';
import { formatCaptureCost, runCaptureCost } from '../bench/capture-cost.js';

export const BENCH_USAGE = `weft bench ca [--requests 2000] [--concurrency 8] [--warmup 200] [--json]   CA signing rate and latency
weft bench mesh [--duration 10s] [--warmup 2s] [--json]   direct vs Weft vs HAProxy mTLS, two lab nodes (root)
weft bench capture [--duration 10s] [--warmup 2s] [--json]   direct vs captured passthrough vs mesh in a
               weft lab: the cost of transparent capture alone (root)
weft bench tcp --target HOST:PORT [--socks5 HOST:PORT] [--local-address IP] [--connections 4]
               [--payload 1024] [--duration 10s] [--warmup 2s] [--rate RPS] [--bulk --streams N] [--json]
weft bench serve --echo HOST:PORT [--discard HOST:PORT]   the bench's workloads`;

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
  if (sub === 'tcp') return benchTcp(rest);
  if (sub === 'serve') return benchServe(rest);
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

async function benchTcp(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    target: { type: 'string' },
    socks5: { type: 'string' },
    'local-address': { type: 'string' },
    connections: { type: 'string' },
    payload: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rate: { type: 'string' },
    bulk: { type: 'boolean' },
    streams: { type: 'string' },
    json: { type: 'boolean' },
  });
  const target = hostPortFlag(f, 'target', '');
  const socks5 = typeof f.socks5 === 'string' ? hostPortFlag(f, 'socks5', '') : undefined;
  const localAddress = typeof f['local-address'] === 'string' ? f['local-address'] : undefined;
  const durationMs = secondsToMs(f, 'duration', 10);
  const result =
    f.bulk === true
      ? await runBulk({ target, socks5, localAddress, durationMs, streams: intFlag(f, 'streams', 1, 256) })
      : await runTcpLoad({
          target,
          socks5,
          localAddress,
          durationMs,
          warmupMs: secondsToMs(f, 'warmup', 2),
          connections: intFlag(f, 'connections', 4, 10_000),
          payloadBytes: intFlag(f, 'payload', 1024, 16 * 1024 * 1024),
          rate: f.rate === undefined ? undefined : intFlag(f, 'rate', 1000, 10_000_000),
        });
  process.stdout.write(
    f.json === true ? JSON.stringify(result) + '\n' : JSON.stringify(result, null, 2) + '\n',
  );
  return 0;
}

async function benchServe(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { echo: { type: 'string' }, discard: { type: 'string' } });
  const servers = [await startEchoServer(hostPortFlag(f, 'echo', ''))];
  if (typeof f.discard === 'string') servers.push(await startDiscardServer(hostPortFlag(f, 'discard', '')));
  await untilSignal();
  for (const s of servers) s.close();
  return 0;
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
