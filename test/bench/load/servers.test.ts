// The bench's trivial servers (bench/load/servers.ts) against clients nobody here wrote: curl (HTTP/1.1
// keep-alive and h2c with prior knowledge), h2load (nghttp2's load generator, both HTTP/1.1 and h2c, with
// and without request bodies) and a grpcio client calling /weft.bench.Echo/Echo with raw bytes. Then the
// generator's own clients against them, as `weft bench` pairs them.
import t from 'tap';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { grpcProtocol } from '../../../bench/load/protocols/grpc.js';
import { http1Protocol } from '../../../bench/load/protocols/http1.js';
import { http2Protocol } from '../../../bench/load/protocols/http2.js';
import { runLoad } from '../../../bench/load/run.js';
import { startGrpcEchoServer, startH2cServer, startHttp1Server } from '../../../bench/load/servers.js';
import type { LoadProtocol } from '../../../bench/load/types.js';
import { missingPython, run, skipReason, SYSTEM_PYTHON } from '../../helpers/exec.js';
import { at, LOCAL, zeroErrors } from './peers.js';

t.setTimeout(60_000);

const GRPC_CLIENT = fileURLToPath(new URL('./python/grpc_echo_client.py', import.meta.url));
const RESPONSE_BYTES = 5000;

const noCurl = existsSync('/usr/bin/curl') ? undefined : '/usr/bin/curl not installed';
const noH2load = existsSync('/usr/bin/h2load') ? undefined : '/usr/bin/h2load not installed (nghttp2-client)';
const noGrpcio = await missingPython(['grpc']);

/** `curl -w` fields for each URL given (the bodies dropped), one line each. */
async function curl(
  options: readonly string[],
  urls: readonly string[],
): Promise<{ code: number; lines: string[]; stderr: string }> {
  const r = await run('curl', [
    '-sS',
    '-w',
    '%{http_code} %{http_version} %{size_download} %{num_connects}\\n',
    ...options,
    ...urls.flatMap((url) => ['-o', '/dev/null', url]),
  ]);
  return { code: r.code, lines: r.stdout.trim().split('\n'), stderr: r.stderr };
}

/** h2load's summary: requests done/succeeded/failed and 2xx count. */
function h2loadSummary(stdout: string): {
  succeeded: number;
  failed: number;
  errored: number;
  ok2xx: number;
} {
  const req = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(
    stdout,
  );
  const codes = /status codes: (\d+) 2xx/.exec(stdout);
  return {
    succeeded: Number(req?.[1] ?? -1),
    failed: Number(req?.[2] ?? -1),
    errored: Number(req?.[3] ?? -1),
    ok2xx: Number(codes?.[1] ?? -1),
  };
}

t.test('HTTP/1.1 server: curl --http1.1 and h2load --h1', async (t) => {
  const server = await startHttp1Server({ host: LOCAL, port: 0 }, RESPONSE_BYTES);
  t.teardown(() => server.close());
  t.ok(server.port > 0, `listening on the bound port ${server.port}`);
  const url = `http://${LOCAL}:${server.port}`;

  t.test('curl', { skip: skipReason(t, noCurl) }, async (t) => {
    // Two URLs in one curl: the second reuses the connection (keep-alive), a POST body is read and dropped.
    const r = await curl(['--http1.1'], [`${url}/any/path`, `${url}/other?q=1`]);
    t.equal(r.code, 0, r.stderr);
    t.same(r.lines, [`200 1.1 ${RESPONSE_BYTES} 1`, `200 1.1 ${RESPONSE_BYTES} 0`], 'answered, kept alive');
    const post = await curl(['--http1.1', '--data-binary', 'x'.repeat(100_000)], [`${url}/upload`]);
    t.same(post.lines, [`200 1.1 ${RESPONSE_BYTES} 1`], 'a POST with a 100 kB body is answered');
  });

  t.test('h2load --h1', { skip: skipReason(t, noH2load) }, async (t) => {
    const r = await run('h2load', ['--h1', '-n', '400', '-c', '4', `${url}/`]);
    t.equal(r.code, 0, r.stderr);
    t.same(h2loadSummary(r.stdout), { succeeded: 400, failed: 0, errored: 0, ok2xx: 400 }, r.stdout);
  });
});

t.test('h2c server: curl --http2-prior-knowledge and h2load', async (t) => {
  const server = await startH2cServer({ host: LOCAL, port: 0 }, RESPONSE_BYTES);
  t.teardown(() => server.close());
  const url = `http://${LOCAL}:${server.port}`;

  t.test('curl', { skip: skipReason(t, noCurl) }, async (t) => {
    // One URL per curl: this curl (7.88) fails a second request on a reused prior-knowledge connection
    // with any server (Node's own, Python's h2 alike); h2load below covers many streams per connection.
    const r = await curl(['--http2-prior-knowledge'], [`${url}/a`]);
    t.equal(r.code, 0, r.stderr);
    t.same(r.lines, [`200 2 ${RESPONSE_BYTES} 1`], 'h2c with prior knowledge');
    const post = await curl(['--http2-prior-knowledge', '--data-binary', 'x'.repeat(100_000)], [`${url}/u`]);
    t.same(post.lines, [`200 2 ${RESPONSE_BYTES} 1`], 'a POST with a 100 kB body is answered');
  });

  t.test(
    'h2load, many streams per connection, with and without bodies',
    { skip: skipReason(t, noH2load) },
    async (t) => {
      const r = await run('h2load', ['-n', '1000', '-c', '2', '-m', '50', `${url}/`]);
      t.equal(r.code, 0, r.stderr);
      t.same(h2loadSummary(r.stdout), { succeeded: 1000, failed: 0, errored: 0, ok2xx: 1000 }, r.stdout);
      const dir = mkdtempSync(join(tmpdir(), 'weft-h2load-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      const body = join(dir, 'body');
      writeFileSync(body, Buffer.alloc(20_000, 0x61));
      const posted = await run('h2load', ['-n', '200', '-c', '2', '-m', '10', '-d', body, `${url}/`]);
      t.equal(posted.code, 0, posted.stderr);
      t.same(
        h2loadSummary(posted.stdout),
        { succeeded: 200, failed: 0, errored: 0, ok2xx: 200 },
        posted.stdout,
      );
    },
  );
});

t.test('gRPC echo server: a grpcio client with raw bytes', { skip: skipReason(t, noGrpcio) }, async (t) => {
  const server = await startGrpcEchoServer({ host: LOCAL, port: 0 });
  t.teardown(() => server.close());
  const r = await run(SYSTEM_PYTHON, [GRPC_CLIENT, `${LOCAL}:${server.port}`]);
  t.equal(r.code, 0, r.stderr);
  t.same(JSON.parse(r.stdout), {
    sizes: [0, 1, 1024, 100_000],
    sequential: [true, true, true, true],
    concurrent: 64,
    unknown: 'UNIMPLEMENTED',
  });
});

t.test('the generator against the trivial servers, as weft bench pairs them', async (t) => {
  const http1 = await startHttp1Server({ host: LOCAL, port: 0 }, 0);
  const h2c = await startH2cServer({ host: LOCAL, port: 0 }, 1024);
  const grpc = await startGrpcEchoServer({ host: LOCAL, port: 0 });
  t.teardown(() => Promise.all([http1.close(), h2c.close(), grpc.close()]));
  const protocols: LoadProtocol[] = [
    http1Protocol({ target: at(http1.port), payloadBytes: 0, path: '/' }),
    http1Protocol({ target: at(http1.port), payloadBytes: 4096, path: '/' }),
    http2Protocol({ target: at(h2c.port), payloadBytes: 0, path: '/', streams: 8 }),
    http2Protocol({ target: at(h2c.port), payloadBytes: 4096, path: '/', streams: 8 }),
    grpcProtocol({ target: at(grpc.port), payloadBytes: 1024, streams: 8 }),
  ];
  for (const protocol of protocols) {
    const r = await runLoad({ protocol, connections: 2, durationMs: 300, warmupMs: 0 });
    t.same(r.errors, zeroErrors(), `${r.protocol}: no errors`);
    t.ok(r.requests > 0, `${r.protocol}: ${r.requests} requests`);
  }
});
