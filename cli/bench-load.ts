// `weft bench load` (the load generator), `weft bench tcp` (its raw-TCP form, kept for scripts) and
// `weft bench serve` (the trivial servers it is measured against).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBulk } from '../bench/load/bulk.js';
import { holdConnections } from '../bench/load/hold.js';
import { formatBulkResult, formatLoadResult, progressLine } from '../bench/load/format.js';
import { grpcProtocol } from '../bench/load/protocols/grpc.js';
import { http1Protocol } from '../bench/load/protocols/http1.js';
import { http2Protocol } from '../bench/load/protocols/http2.js';
import { tcpProtocol } from '../bench/load/protocols/tcp.js';
import { runLoad } from '../bench/load/run.js';
import { realtimeArgv, schedulerPolicy } from '../bench/load/scheduler.js';
import {
  startGrpcEchoServer,
  startH2cServer,
  startHttp1Server,
  type BenchServer,
} from '../bench/load/servers.js';
import type { LoadProtocol } from '../bench/load/types.js';
import { startDiscardServer, startEchoServer } from '../bench/tcp-servers.js';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { formatHostPort, parseHostPort, type HostPort } from '../core/address.js';
import { durationMsFlag, hostPortFlag, parseFlags, stringFlag, untilSignal, UsageError } from './flags.js';

export const LOAD_USAGE = `weft bench load --target HOST:PORT [--protocol http1|http2|grpc|tcp] [--path /] [--authority HOST]
               [--connections 4] [--streams 1] [--payload BYTES] [--rate RPS] [--new-connection]
               [--duration 10s] [--warmup 2s] [--realtime] [--json] [--progress|--no-progress]
               [--local-address IP] [--socks5 HOST:PORT] [--retry-idempotent]
               without --rate: closed loop at the maximum rate; with it, open loop with latency from the
               scheduled start. --streams: concurrent streams per connection (http2, grpc).
               --realtime: re-runs itself under chrt -f (root), for fixed-rate latency
               --retry-idempotent: a GET that fails before any answer byte on a reused connection is sent
               once more on a new one, as HTTP clients do (counted as retried)
weft bench load --protocol tcp --bulk --target HOST:PORT [--streams 1] [--duration 10s]   Gbit/s to a discard server
weft bench hold --target HOST:PORT [--connections 10000] [--hold 10s]   opens idle connections, prints
               {"opened":N,"failed":F} when all are open, holds them, then closes them
weft bench tcp …   the same as weft bench load --protocol tcp …
weft bench serve [--http ADDR] [--h2c ADDR] [--grpc ADDR] [--echo ADDR] [--discard ADDR] [--response-size 1024]
               the trivial servers: HTTP/1.1 and h2c answer any request with --response-size bytes,
               gRPC echoes /weft.bench.Echo/Echo, echo and discard are raw TCP`;

const PROTOCOLS = ['http1', 'http2', 'grpc', 'tcp'] as const;
type ProtocolName = (typeof PROTOCOLS)[number];
const REEXEC_ENV = 'WEFT_BENCH_REALTIME';

export function intFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  max: number,
  min = 1,
): number {
  const v = values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name}: expected an integer ${min}..${max}, got ${String(v)}`);
  return n;
}

const LOAD_FLAGS = {
  target: { type: 'string' },
  protocol: { type: 'string' },
  path: { type: 'string' },
  authority: { type: 'string' },
  connections: { type: 'string' },
  streams: { type: 'string' },
  payload: { type: 'string' },
  rate: { type: 'string' },
  'new-connection': { type: 'boolean' },
  'retry-idempotent': { type: 'boolean' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  realtime: { type: 'boolean' },
  json: { type: 'boolean' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  'local-address': { type: 'string' },
  socks5: { type: 'string' },
  bulk: { type: 'boolean' },
} as const;

export async function benchLoad(argv: string[], defaultProtocol: ProtocolName = 'http1'): Promise<number> {
  const f = parseFlags(argv, LOAD_FLAGS);
  if (f.realtime === true && process.env[REEXEC_ENV] === undefined && schedulerPolicy() !== 'SCHED_FIFO')
    return reexecRealtime();
  const name = stringFlag(f, 'protocol', defaultProtocol);
  if (!(PROTOCOLS as readonly string[]).includes(name))
    throw new UsageError(`--protocol: expected one of ${PROTOCOLS.join(', ')}, got ${name}`);
  const protocolName = name as ProtocolName;
  const target = parseHostPort(stringFlag(f, 'target'), '--target');
  const localAddress = typeof f['local-address'] === 'string' ? f['local-address'] : undefined;
  const socks5 = typeof f.socks5 === 'string' ? hostPortFlag(f, 'socks5', '') : undefined;
  const durationMs = durationMsFlag(f, 'duration', 10_000);
  if (f.bulk === true) {
    if (protocolName !== 'tcp') throw new UsageError('--bulk needs --protocol tcp');
    const result = await runBulk({
      target,
      localAddress,
      socks5,
      durationMs,
      streams: intFlag(f, 'streams', 1, 256),
    });
    process.stdout.write(`${f.json === true ? JSON.stringify(result) : formatBulkResult(result)}\n`);
    return 0;
  }
  if (f.streams !== undefined && (protocolName === 'http1' || protocolName === 'tcp'))
    throw new UsageError(
      `--streams: ${protocolName} has one request in flight per connection (use --connections)`,
    );
  const streams = intFlag(f, 'streams', 1, 1000);
  const payloadBytes = intFlag(
    f,
    'payload',
    protocolName === 'tcp' || protocolName === 'grpc' ? 1024 : 0,
    16 << 20,
    0,
  );
  const dialTo = { target, localAddress, socks5 };
  const http = {
    ...dialTo,
    payloadBytes,
    path: stringFlag(f, 'path', '/'),
    authority: f.authority as string | undefined,
  };
  const protocol: LoadProtocol =
    protocolName === 'http1'
      ? http1Protocol(http)
      : protocolName === 'http2'
        ? http2Protocol({ ...http, streams })
        : protocolName === 'grpc'
          ? grpcProtocol({ ...dialTo, payloadBytes, streams })
          : tcpProtocol({ ...dialTo, payloadBytes });
  const showProgress = f['no-progress'] !== true && (f.progress === true || process.stderr.isTTY === true);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  try {
    const result = await runLoad({
      protocol,
      connections: intFlag(f, 'connections', 4, 100_000),
      durationMs,
      warmupMs: durationMsFlag(f, 'warmup', 2000),
      rate: f.rate === undefined ? undefined : intFlag(f, 'rate', 1000, 10_000_000),
      connectionPerRequest: f['new-connection'] === true,
      retryIdempotent: f['retry-idempotent'] === true,
      signal: abort.signal,
      ...(showProgress && {
        onProgress: (p) =>
          void process.stderr.write(`\r${progressLine(p)}${process.stderr.isTTY ? '' : '\n'}`),
      }),
    });
    if (showProgress) process.stderr.write('\n');
    const scheduler = schedulerPolicy();
    const text =
      f.json === true
        ? `${JSON.stringify({ ...result, target, scheduler })}\n`
        : `${formatLoadResult(result)}\n  generator scheduler: ${scheduler}\n`;
    const code = result.errorCount === 0 ? 0 : 2;
    await new Promise((resolve) => process.stdout.write(text, resolve));
    // The real-time copy exits once its result is out: nothing it opened may keep it running above
    // every normal process (the system under test included).
    if (process.env[REEXEC_ENV] === '1') process.exit(code);
    return code;
  } finally {
    process.off('SIGINT', onSignal);
  }
}

/** Runs this same command again under SCHED_FIFO and returns its exit code. */
async function reexecRealtime(): Promise<number> {
  const argv = realtimeArgv([process.execPath, ...process.execArgv, ...process.argv.slice(1)]);
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: 'inherit',
    env: { ...process.env, [REEXEC_ENV]: '1' },
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  return code ?? 1;
}

export async function benchHold(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    target: { type: 'string' },
    connections: { type: 'string' },
    hold: { type: 'string' },
    'local-address': { type: 'string' },
  });
  const held = await holdConnections({
    target: parseHostPort(stringFlag(f, 'target'), '--target'),
    localAddress: typeof f['local-address'] === 'string' ? f['local-address'] : undefined,
    connections: intFlag(f, 'connections', 10_000, 1_000_000),
  });
  process.stdout.write(`${JSON.stringify({ opened: held.opened, failed: held.failed })}\n`);
  await Promise.race([sleep(durationMsFlag(f, 'hold', 10_000)), untilSignal()]);
  const stillOpen = held.open();
  held.close();
  process.stdout.write(`${JSON.stringify({ opened: held.opened, failed: held.failed, stillOpen })}\n`);
  return 0;
}

export async function benchServe(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    http: { type: 'string' },
    h2c: { type: 'string' },
    grpc: { type: 'string' },
    echo: { type: 'string' },
    discard: { type: 'string' },
    'response-size': { type: 'string' },
  });
  const responseBytes = intFlag(f, 'response-size', 1024, 16 << 20, 0);
  const listening = (server: net.Server): BenchServer => ({
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((done) => server.close(() => done())),
  });
  const starters: [string, (addr: HostPort) => Promise<BenchServer>][] = [
    ['http', (a) => startHttp1Server(a, responseBytes)],
    ['h2c', (a) => startH2cServer(a, responseBytes)],
    ['grpc', (a) => startGrpcEchoServer(a)],
    ['echo', async (a) => listening(await startEchoServer(a))],
    ['discard', async (a) => listening(await startDiscardServer(a))],
  ];
  const servers: BenchServer[] = [];
  const serving: string[] = [];
  for (const [flag, start] of starters) {
    if (typeof f[flag] !== 'string') continue;
    const addr = hostPortFlag(f, flag, '');
    const server = await start(addr);
    servers.push(server);
    // The port bound, which differs from the one asked for when that was 0.
    serving.push(`${flag} ${formatHostPort({ host: addr.host, port: server.port })}`);
  }
  if (servers.length === 0)
    throw new UsageError(`weft bench serve: name at least one server\n\n${LOAD_USAGE}`);
  process.stdout.write(`serving: ${serving.join(', ')}\n`);
  await untilSignal();
  for (const s of servers) await s.close();
  return 0;
}
