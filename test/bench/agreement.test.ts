// `weft bench agree`: the parsers on real outputs of wrk 4.1.0, h2load (nghttp2 1.52) and iperf3 3.12
// (captured on this machine's kind, trimmed), and one very short run end to end against the bench's
// trivial servers and an `iperf3 -s`, all on 127.0.0.1 (no root). Skips where a tool is missing, fails
// instead under CI (scripts/setup.sh installs them).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type net from 'node:net';
import t from 'tap';
import {
  formatAgreement,
  missingTools,
  missingToolsMessage,
  parseDurationUs,
  parseH2load,
  parseIperf3,
  parseWrk,
  runAgreement,
} from '../../bench/agreement.js';
import { startH2cServer, startHttp1Server, type BenchServer } from '../../bench/load/servers.js';
import { startDiscardServer } from '../../bench/tcp-servers.js';
import { freePort, weftCliPath } from '../../lab/processes.js';
import { skipReason } from '../helpers/exec.js';

const WRK = `Running 2s test @ http://127.0.0.1:28180/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   120.80us  372.65us   6.93ms   95.69%
    Req/Sec    74.42k    21.07k   89.57k    90.48%
  154929 requests in 2.10s, 175.82MB read
Requests/sec:  73804.32
Transfer/sec:     83.76MB
`;

const WRK_LATENCY = `Running 2s test @ http://127.0.0.1:28180/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   323.03us  484.58us   6.60ms   94.24%
    Req/Sec    34.34k     8.21k   43.08k    78.57%
  Latency Distribution
     50%  185.00us
     75%  269.00us
     90%  433.00us
     99%    2.92ms
  143263 requests in 2.10s, 162.59MB read
Requests/sec:  68239.62
Transfer/sec:     77.44MB
`;

/** Against a server answering 404. */
const WRK_404 = `Running 1s test @ http://127.0.0.1:28190/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   267.13us  828.97us  11.23ms   92.74%
    Req/Sec    36.46k    13.57k   46.78k    80.00%
  36140 requests in 1.00s, 4.52MB read
  Non-2xx or 3xx responses: 36140
Requests/sec:  36019.12
Transfer/sec:      4.50MB
`;

const H2LOAD_CLOSED = `starting benchmark...
spawning thread #0: 4 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Warm-up started for thread #0.
progress: 100% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.00s, 51250.00 req/s, 51.32MB/s
requests: 102500 total, 102540 started, 102500 done, 102500 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 102500 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 102.64MB (107625372) total, 801.05KB (820276) headers (space savings 86.88%), 100.10MB (104960000) data
                     min         max         mean         sd        +/- sd
time for request:      130us     16.72ms       774us       743us    97.18%
time for connect:       72us       116us        99us        19us    75.00%
time to 1st byte:    13.31ms     15.70ms     13.94ms      1.17ms    75.00%
req/s           :   12792.40    12832.21    12809.86       18.36    75.00%
`;

/** -c 4 -m 10 -D 3 --warm-up-time=1: "finished in" counts the warm-up, req/s only the main duration. */
const H2LOAD_WARMUP = `finished in 4.00s, 51373.33 req/s, 51.44MB/s
requests: 154120 total, 154120 started, 154120 done, 154120 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 154120 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 154.33MB (161826276) total, 1.54MB (1615100) headers (space savings 86.88%), 197.10MB (206673920) data
                     min         max         mean         sd        +/- sd
time for request:      163us     21.29ms       772us       871us    96.62%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :   12813.00    12899.55    12842.84       40.09    75.00%
`;

/** -c 4 -m 1 --rps 250 -D 2. */
const H2LOAD_RPS = `finished in 2.00s, 998.00 req/s, 1023.52KB/s
requests: 1996 total, 1996 started, 1996 done, 1996 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 1996 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 2.00MB (2096172) total, 15.86KB (16244) headers (space savings 86.66%), 1.95MB (2043904) data
                     min         max         mean         sd        +/- sd
time for request:       32us      5.82ms       318us       479us    95.89%
time for connect:       67us       103us        90us        15us    75.00%
time to 1st byte:      556us       611us       574us        24us    75.00%
req/s           :     249.46      249.46      249.46        0.00    75.00%
`;

/** Nothing listening: h2load still exits 0. */
const H2LOAD_REFUSED = `starting benchmark...
spawning thread #0: 1 total client(s). Timing-based test with 0s of warm-up time and 1s of main duration for measurements.
Stopped all clients for thread #0

finished in 1.00s, 0.00 req/s, 0B/s
requests: 0 total, 0 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 0B (0) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
`;

const IPERF3 = `{
	"start":	{
		"connected":	[{ "socket": 5, "local_host": "127.0.0.1", "local_port": 55532, "remote_host": "127.0.0.1", "remote_port": 18201 }],
		"version":	"iperf 3.12",
		"test_start":	{ "protocol": "TCP", "num_streams": 1, "blksize": 131072, "omit": 0, "duration": 3 }
	},
	"intervals":	[],
	"end":	{
		"streams":	[],
		"sum_sent":	{ "start": 0, "end": 3.000383, "seconds": 3.000383, "bytes": 11273502720, "bits_per_second": 30058836408.55184, "retransmits": 49, "sender": true },
		"sum_received":	{ "start": 0, "end": 3.000421, "seconds": 3.000421, "bytes": 11273502720, "bits_per_second": 30058455716.714424, "sender": true },
		"cpu_utilization_percent":	{ "host_total": 84.9940677156193, "host_user": 1.4487227856662157, "host_system": 83.54537822933216, "remote_total": 47.161661559073934, "remote_user": 1.4272597140081353, "remote_system": 45.7343351880644 },
		"sender_tcp_congestion":	"bbr",
		"receiver_tcp_congestion":	"bbr"
	}
}
`;

/** Nothing listening: iperf3 -J exits 0 and says so in the JSON. */
const IPERF3_REFUSED = `{
	"start":	{
		"connected":	[],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44-fc-v509 #1 SMP PREEMPT_DYNAMIC @0 x86_64"
	},
	"intervals":	[],
	"end":	{
	},
	"error":	"unable to connect to server: Connection refused"
}
`;

t.test('durations as wrk and h2load print them', async (t) => {
  t.equal(parseDurationUs('130us'), 130);
  t.equal(parseDurationUs('192.90us'), 192.9);
  t.equal(parseDurationUs('16.72ms'), 16720);
  t.equal(parseDurationUs('1.23s'), 1_230_000);
  t.equal(parseDurationUs('2.00m'), 120_000_000);
  t.throws(() => parseDurationUs('fast'), /not a duration/);
});

t.test('wrk: Requests/sec, mean latency, requests, errors', async (t) => {
  t.same(parseWrk(WRK), {
    requests: 154929,
    seconds: 2.1,
    requestsPerSecond: 73804.32,
    latencyMeanUs: 120.8,
    errors: 0,
  });
  const withDistribution = parseWrk(WRK_LATENCY);
  t.equal(withDistribution.requestsPerSecond, 68239.62, '--latency output');
  t.equal(withDistribution.latencyMeanUs, 323.03);
  t.equal(parseWrk(WRK_404).errors, 36140, 'non-2xx responses count as errors');
  t.throws(
    () => parseWrk('unable to connect to 127.0.0.1:1 Connection refused\n'),
    /wrk: no "Requests\/sec:"/,
  );
});

t.test('h2load: req/s over the main duration, requests, time for request', async (t) => {
  t.same(parseH2load(H2LOAD_CLOSED), {
    requestsPerSecond: 51250,
    requests: { total: 102500, succeeded: 102500, failed: 0, errored: 0, timeout: 0 },
    requestTimeUs: { min: 130, max: 16720, mean: 774, sd: 743 },
  });
  const warm = parseH2load(H2LOAD_WARMUP);
  t.equal(warm.requestsPerSecond, 51373.33, 'req/s as printed (main duration only)');
  t.equal(Math.round(warm.requests.succeeded / 3), Math.round(warm.requestsPerSecond), 'over 3 s, not 4');
  const rps = parseH2load(H2LOAD_RPS);
  t.equal(rps.requestsPerSecond, 998);
  t.equal(rps.requestTimeUs.mean, 318);
  t.throws(() => parseH2load(H2LOAD_REFUSED), /h2load: no request succeeded/);
  t.throws(() => parseH2load('starting benchmark...\n'), /h2load: no "finished in/);
});

t.test('iperf3 -J: the receiver total and both ends’ CPU', async (t) => {
  const r = parseIperf3(IPERF3);
  t.equal(r.receivedBitsPerSecond, 30058455716.714424);
  t.equal(r.sentBitsPerSecond, 30058836408.55184);
  t.equal(r.receivedBytes, 11273502720);
  t.equal(r.seconds, 3.000421);
  t.equal(Math.round(r.cpuPercent.client), 85);
  t.equal(Math.round(r.cpuPercent.server), 47);
  t.throws(() => parseIperf3(IPERF3_REFUSED), /iperf3: unable to connect to server: Connection refused/);
  t.throws(() => parseIperf3('iperf3: error - unable to connect'), /iperf3: its output is not JSON/);
  t.throws(() => parseIperf3('{"end":{}}'), /sum_received/);
});

t.test('a missing tool is named with its Debian package', async (t) => {
  const msg = missingToolsMessage(['wrk', 'h2load']);
  t.match(msg, /wrk \(Debian package wrk\)/);
  t.match(msg, /h2load \(Debian package nghttp2-client\)/);
  t.match(msg, /apt-get install wrk nghttp2-client/);
});

const missing = missingTools();
const why =
  missing.length > 0
    ? missingToolsMessage(missing)
    : existsSync(weftCliPath())
      ? undefined
      : `${weftCliPath()} missing: run npm run build`;

async function startIperf3(port: number): Promise<ChildProcess> {
  // --forceflush: its output is block-buffered into a pipe otherwise, and "Server listening" never comes.
  const child = spawn('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port), '--forceflush'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let said = '';
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`iperf3 -s did not start: ${said}`)), 10_000);
    const seen = (d: Buffer): void => {
      said += d.toString();
      if (!said.includes('Server listening')) return;
      clearTimeout(timer);
      resolve();
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`iperf3 -s exited ${String(code)}: ${said}`));
    });
  });
  try {
    await started;
  } catch (err) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw err;
  }
  return child;
}

t.test(
  'runAgreement, 1 s per run on loopback: every metric, positive figures from both sides',
  { skip: skipReason(t, why), timeout: 90_000 },
  async (t) => {
    const host = '127.0.0.1';
    // Ours bind port 0 and say which they got; iperf3 -s needs a port named in advance.
    const servers: BenchServer[] = [
      await startHttp1Server({ host, port: 0 }, 1024),
      await startH2cServer({ host, port: 0 }, 1024),
    ];
    const [http1, h2c] = servers.map((s) => s.port) as [number, number];
    const discardServer: net.Server = await startDiscardServer({ host, port: 0 });
    const discard = (discardServer.address() as net.AddressInfo).port;
    const iperf3 = await freePort();
    const iperf3Server = await startIperf3(iperf3);
    t.teardown(async () => {
      for (const s of servers) await s.close();
      discardServer.close();
      if (iperf3Server.exitCode === null) {
        iperf3Server.kill('SIGTERM');
        await once(iperf3Server, 'exit');
      }
    });

    const lines: string[] = [];
    const result = await runAgreement({
      http1: { host, port: http1 },
      h2c: { host, port: h2c },
      discard: { host, port: discard },
      iperf3: { host, port: iperf3 },
      durationS: 1,
      warmupS: 0,
      connections: 4,
      streams: 4,
      rate: 200,
      rateConnections: 2,
      bulkStreams: 1,
      realtime: false,
      out: (line) => lines.push(line),
    });
    t.same(
      result.metrics.map((m) => m.key),
      [
        'http1-max-rps',
        'http1-closed-mean-latency',
        'http2-max-rps',
        'http2-closed-mean-latency',
        'http2-fixed-rps',
        'http2-fixed-mean-latency',
        'tcp-bulk-gbps',
      ],
      'every metric',
    );
    for (const m of result.metrics) {
      t.ok(m.weft > 0, `${m.key}: weft ${m.weft} > 0`);
      t.ok(m.independent > 0, `${m.key}: ${m.tool} ${m.independent} > 0`);
      t.ok(Number.isFinite(m.ratio), `${m.key}: ratio ${m.ratio}`);
      t.equal(m.within, Math.abs(m.weft / m.independent - 1) <= 0.2, `${m.key}: within as the ratio says`);
    }
    t.same(
      result.runs.map((r) => r.client),
      ['weft', 'wrk', 'weft', 'h2load', 'weft', 'h2load', 'weft', 'iperf3'],
      'each pair interleaved, weft first',
    );
    t.same(result.runs.find((r) => r.client === 'wrk')?.argv, [
      'wrk',
      '-t',
      '1',
      '-c',
      '4',
      '-d',
      '1s',
      `http://127.0.0.1:${http1}/`,
    ]);
    t.ok(
      result.runs.some((r) => r.client === 'h2load' && r.argv.includes('--rps') && r.argv.includes('100')),
      'h2load --rps per connection: 200 over 2',
    );
    for (const r of result.runs)
      t.equal(r.errors, 0, `${r.argv.slice(0, 6).join(' ')} …: no failed requests`);
    t.ok(
      lines.some((l) => l.includes('wrk -t 1 -c 4')),
      'each run announced with its command',
    );
    const table = formatAgreement(result);
    t.match(table, /^\| metric \| weft \| independent tool \| ratio weft \/ tool \| within 20 %\? \|/);
    t.equal(table.split('\n').filter((l) => /^\| (HTTP|TCP)/.test(l)).length, 7, 'a row per metric');
    t.match(
      table,
      /\| TCP bulk upload, 1 stream, received \(Gbit\/s; different servers\) \| [\d.]+ \| iperf3: [\d.]+ \|/,
    );
  },
);

t.test('runAgreement refuses what it cannot do before starting anything', async (t) => {
  const addr = { host: '127.0.0.1', port: 1 };
  const base = {
    http1: addr,
    h2c: addr,
    discard: addr,
    iperf3: addr,
    durationS: 1,
    warmupS: 0,
    connections: 1,
    streams: 1,
    rate: 100,
    rateConnections: 3,
    bulkStreams: 1,
    realtime: false,
  };
  await t.rejects(runAgreement(base), /rate 100 is not a multiple of 3 connections/);
  await t.rejects(
    runAgreement({ ...base, rateConnections: 1, durationS: 0 }),
    /durationS must be a positive/,
  );
});
