// `weft bench load|tcp|serve` as built (dist/cli/main.js): the JSON a run prints parses and has every
// field, against independent servers; the human form reads; `bench serve` starts every trivial server it
// is asked for and they answer curl, grpcio and the generator; usage errors exit 2 with a message naming
// the problem.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runBulk } from '../../../bench/load/bulk.js';
import { tcpProtocol } from '../../../bench/load/protocols/tcp.js';
import { runLoad } from '../../../bench/load/run.js';
import { missingPython, run, skipReason, SYSTEM_PYTHON, type ExecResult } from '../../helpers/exec.js';
import { at, CLI, freePorts, LOCAL, PythonPeer, refusedPort, zeroErrors } from './peers.js';

t.setTimeout(60_000);

const noBuild = existsSync(CLI) ? undefined : `no build at ${CLI}: run npm run build`;
const skip = skipReason(t, noBuild ?? (await missingPython(['h2', 'grpc'])));
const GRPC_CLIENT = fileURLToPath(new URL('./python/grpc_echo_client.py', import.meta.url));

function weft(args: readonly string[]): Promise<ExecResult> {
  return run(process.execPath, [CLI, ...args]);
}

const LATENCY_KEYS = ['max', 'mean', 'p50', 'p90', 'p99', 'p999'];

t.test('bench load --json: one JSON line with every field', { skip }, async (t) => {
  const peer = await PythonPeer.start('h2');
  t.teardown(() => peer.close());
  const r = await weft([
    'bench',
    'load',
    '--json',
    '--progress',
    '--protocol',
    'http2',
    '--target',
    `${LOCAL}:${peer.port}`,
    '--connections',
    '2',
    '--streams',
    '3',
    '--payload',
    '10',
    '--path',
    '/x',
    '--rate',
    '100',
    '--duration',
    '1s',
    '--warmup',
    '200ms',
  ]);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 1, 'one line on stdout');
  const out = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.same(Object.keys(out).sort(), [
    'achievedRps',
    'connectionPerRequest',
    'connections',
    'depth',
    'errorCount',
    'errors',
    'latencyCurve',
    'latencyUs',
    'mode',
    'protocol',
    'requests',
    'scheduler',
    'seconds',
    'sendLagUs',
    'serviceUs',
    'target',
    'targetRps',
  ]);
  t.match(out, {
    protocol: 'http2',
    mode: 'fixed-rate',
    connectionPerRequest: false,
    connections: 2,
    depth: 3,
    targetRps: 100,
    seconds: 1,
    errors: zeroErrors(),
    errorCount: 0,
    target: { host: LOCAL, port: peer.port },
    scheduler: String,
  });
  t.ok(Math.abs((out.requests as number) - 100) <= 2, `${String(out.requests)} requests`);
  for (const key of ['latencyUs', 'serviceUs', 'sendLagUs'] as const) {
    const l = out[key] as Record<string, number>;
    t.same(Object.keys(l).sort(), LATENCY_KEYS, `${key} has every percentile`);
    t.ok(
      Object.values(l).every((v) => Number.isInteger(v) && v > 0),
      `${key}: whole microseconds`,
    );
  }
  const curve = out.latencyCurve as [number, number][];
  t.equal(curve.length, 23, 'the latency curve has its 23 points');
  t.same(curve[0]?.[0], 0);
  t.same(curve.at(-1)?.[0], 99.999);
  const seen = await peer.stats();
  t.equal(seen.connections, 2, 'the server saw the two connections');
  t.ok(Math.abs(seen.requests - 120) <= 2, `the server saw ${seen.requests} requests (warm-up included)`);
  t.equal(seen.bytes, seen.requests * 10, '--payload 10: 10-byte POST bodies');
  // --progress: a line a second on stderr (not a terminal: one per line), not on stdout.
  t.match(r.stderr, /\] 1\/1 s +\d+ rps +\d+ done +0 errors/, 'progress on stderr');
});

t.test(
  'bench load prints a table; errors give exit code 2; gRPC and --new-connection',
  { skip },
  async (t) => {
    const peer = await PythonPeer.start('grpc');
    t.teardown(() => peer.close());
    const target = `${LOCAL}:${peer.port}`;
    const r = await weft([
      'bench',
      'load',
      '--protocol',
      'grpc',
      '--target',
      target,
      '--connections',
      '2',
      '--streams',
      '4',
      '--duration',
      '500ms',
      '--warmup',
      '0s',
    ]);
    t.equal(r.code, 0, r.stderr);
    t.match(
      r.stdout,
      /^grpc, 2 connections × 4 streams, closed loop, maximum rate \(latency from the send\), 0\.5 s$/m,
    );
    t.match(r.stdout, /^ {2}requests \d+, achieved \d+ rps, errors 0$/m);
    t.match(r.stdout, /^ {2}latency ms +p50 +p90 +p99 +p99\.9 +max +mean$/m);
    t.match(r.stdout, /^ {2}from send( +\d+\.\d+){6}$/m);
    t.match(r.stdout, /generator scheduler: SCHED_\w+/);

    const perRequest = await weft([
      'bench',
      'load',
      '--json',
      '--protocol',
      'grpc',
      '--target',
      target,
      '--new-connection',
      '--rate',
      '50',
      '--duration',
      '500ms',
      '--warmup',
      '0s',
    ]);
    t.equal(perRequest.code, 0, perRequest.stderr);
    const out = JSON.parse(perRequest.stdout) as { connectionPerRequest: boolean; requests: number };
    t.equal(out.connectionPerRequest, true);
    t.ok(Math.abs(out.requests - 25) <= 1, `${out.requests} requests`);

    const failing = await PythonPeer.start('http1', ['--status', '503']);
    t.teardown(() => failing.close());
    const bad = await weft([
      'bench',
      'load',
      '--target',
      `${LOCAL}:${failing.port}`,
      '--rate',
      '50',
      '--duration',
      '500ms',
      '--warmup',
      '0s',
    ]);
    t.equal(bad.code, 2, 'errors: exit code 2');
    t.match(
      bad.stdout,
      /^http1, 4 connections, fixed rate 50 rps \(latency from the scheduled start\), 0\.5 s$/m,
    );
    const errors = /errors (\d+) \(status (\d+)\)/.exec(bad.stdout);
    t.ok(errors !== null && errors[1] === errors[2], 'the errors by kind: all status');
    t.ok(Math.abs(Number(errors?.[1]) - 25) <= 1, `${errors?.[1]} errors`);
    t.match(bad.stdout, /^ {2}generator lateness( +\d+\.\d+){6}$/m);
  },
);

t.test('bench tcp: the raw-TCP form, and --bulk against a discard server', { skip }, async (t) => {
  const echo = await PythonPeer.start('tcp-echo', ['--payload', '100']);
  t.teardown(() => echo.close());
  const r = await weft([
    'bench',
    'tcp',
    '--json',
    '--target',
    `${LOCAL}:${echo.port}`,
    '--payload',
    '100',
    '--connections',
    '3',
    '--duration',
    '300ms',
    '--warmup',
    '0s',
  ]);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { protocol: string; mode: string; requests: number };
  t.match(out, { protocol: 'tcp', mode: 'closed-loop' });
  const seen = await echo.stats();
  t.equal(seen.connections, 3);
  t.ok(seen.requests >= out.requests && out.requests > 0, `${out.requests} requests, ${seen.requests} seen`);

  const discard = await PythonPeer.start('discard');
  t.teardown(() => discard.close());
  const bulk = await weft([
    'bench',
    'tcp',
    '--bulk',
    '--json',
    '--target',
    `${LOCAL}:${discard.port}`,
    '--streams',
    '2',
    '--duration',
    '300ms',
  ]);
  t.equal(bulk.code, 0, bulk.stderr);
  const b = JSON.parse(bulk.stdout) as {
    streams: number;
    bytes: number;
    seconds: number;
    gbitPerSecond: number;
  };
  t.same(Object.keys(b).sort(), ['bytes', 'gbitPerSecond', 'seconds', 'streams']);
  t.equal(b.streams, 2);
  const counted = await discard.statsWhen((s) => s.open === 0);
  t.equal(b.bytes, counted.bytes, 'the bytes reported are those the discard server counted');
  t.equal(counted.connections, 2);
});

t.test('bench serve: every server it is asked for answers', { skip }, async (t) => {
  const [http, h2c, grpc, echo, discard] = await freePorts(5);
  const child = spawn(
    process.execPath,
    [
      CLI,
      'bench',
      'serve',
      '--http',
      `${LOCAL}:${http}`,
      '--h2c',
      `${LOCAL}:${h2c}`,
      '--grpc',
      `${LOCAL}:${grpc}`,
      '--echo',
      `${LOCAL}:${echo}`,
      '--discard',
      `${LOCAL}:${discard}`,
      '--response-size',
      '300',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const [first] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  t.equal(
    first,
    `serving: http ${LOCAL}:${http}, h2c ${LOCAL}:${h2c}, grpc ${LOCAL}:${grpc}, echo ${LOCAL}:${echo}, discard ${LOCAL}:${discard}`,
  );

  const curl = (opts: string[], port: number): Promise<ExecResult> =>
    run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{http_version} %{size_download}',
      ...opts,
      `http://${LOCAL}:${port}/`,
    ]);
  t.equal((await curl(['--http1.1'], http!)).stdout, '200 1.1 300', 'HTTP/1.1: curl, 300 bytes');
  t.equal((await curl(['--http2-prior-knowledge'], h2c!)).stdout, '200 2 300', 'h2c: curl, 300 bytes');
  const g = await run(SYSTEM_PYTHON, [GRPC_CLIENT, `${LOCAL}:${grpc}`]);
  t.equal(g.code, 0, g.stderr);
  t.match(JSON.parse(g.stdout), { sequential: [true, true, true, true], concurrent: 64 }, 'gRPC: grpcio');
  const tcp = await runLoad({
    protocol: tcpProtocol({ target: at(echo!), payloadBytes: 100 }),
    connections: 2,
    durationMs: 200,
    warmupMs: 0,
  });
  t.same(tcp.errors, zeroErrors(), 'echo: the TCP load client');
  t.ok(tcp.requests > 0);
  const bulk = await runBulk({ target: at(discard!), durationMs: 200, streams: 1 });
  t.ok(bulk.bytes > 0, 'discard: counted bytes');

  child.kill('SIGTERM');
  const [code] = await exited;
  t.equal(code, 0, `SIGTERM: closes its servers and exits 0 ${stderr}`);
});

t.test(
  'usage errors exit non-zero with a message naming the problem',
  { skip: skipReason(t, noBuild) },
  async (t) => {
    const refused = await refusedPort();
    const target = `${LOCAL}:${refused}`;
    const cases: [string[], RegExp, number?][] = [
      [
        ['bench', 'load', '--protocol', 'quic', '--target', target],
        /^weft: --protocol: expected one of http1, http2, grpc, tcp, got quic$/m,
      ],
      [
        ['bench', 'load', '--bulk', '--protocol', 'http1', '--target', target],
        /^weft: --bulk needs --protocol tcp$/m,
      ],
      [['bench', 'load', '--bulk', '--target', target], /^weft: --bulk needs --protocol tcp$/m],
      [['bench', 'load', '--protocol', 'http1'], /^weft: --target is required$/m],
      // A malformed address is reported as a configuration error (exit 1), not as a usage error.
      [['bench', 'load', '--target', 'nowhere'], /^weft: --target: expected host:port, got "nowhere"/m, 1],
      [
        ['bench', 'load', '--target', target, '--rate', '0'],
        /^weft: --rate: expected an integer 1\.\.\d+, got 0$/m,
      ],
      [
        ['bench', 'load', '--protocol', 'http2', '--target', target, '--streams', 'many'],
        /^weft: --streams: expected an integer/m,
      ],
      [
        ['bench', 'load', '--target', target, '--streams', '4'],
        /^weft: --streams: http1 has one request in flight per connection/m,
      ],
      [
        ['bench', 'load', '--target', target, '--duration', 'soon'],
        /^weft: --duration: expected a duration/m,
      ],
      [['bench', 'load', '--target', target, '--bogus'], /^weft: Unknown option '--bogus'/m],
      [['bench', 'serve'], /^weft: weft bench serve: name at least one server$/m],
    ];
    const results = await Promise.all(cases.map(([args]) => weft(args)));
    for (const [i, [args, message, code = 2]] of cases.entries()) {
      const r = results[i]!;
      t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
      t.match(r.stderr, message, `${args.join(' ')}: says why`);
      t.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
    }
    // Not a usage error: the target refuses. Exit 1, naming the cause.
    const r = await weft(['bench', 'load', '--target', target, '--duration', '200ms', '--warmup', '0s']);
    t.equal(r.code, 1, 'a refusing target: exit 1');
    t.match(r.stderr, /ECONNREFUSED/);
  },
);

const chrt = await run('chrt', ['-f', '20', 'true']);
// Real-time scheduling needs root (CAP_SYS_NICE): elsewhere this is not a missing peer, just a skip.
const noRealtime = chrt.code === 0 ? skip : `chrt -f does not work here (not root?): ${chrt.stderr.trim()}`;

t.test('--realtime: re-runs itself under SCHED_FIFO', { skip: noRealtime }, async (t) => {
  const peer = await PythonPeer.start('tcp-echo', ['--payload', '1024']);
  t.teardown(() => peer.close());
  const r = await weft([
    'bench',
    'tcp',
    '--realtime',
    '--json',
    '--target',
    `${LOCAL}:${peer.port}`,
    '--rate',
    '50',
    '--duration',
    '300ms',
    '--warmup',
    '0s',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { scheduler: 'SCHED_FIFO', errorCount: 0, mode: 'fixed-rate' });
});
