// The waypoint end to end on the real kernel: the demo namespace enrolled, `weft waypoint apply
// --enroll-namespace`, HTTPRoutes and an AuthorizationPolicy applied with `weft apply -f`, and requests
// from the client pod (plain curl, Python sockets, grpcio: peers nobody here wrote) captured by eBPF,
// tunnelled to the waypoint and on to the echo pods, whose JSON answers and logs show what arrived.
// Root only (skips with the reason elsewhere, fails under CI).
import t from 'tap';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labDir, labUnavailable, readState, skipReason, weft } from './cluster/lab-harness.js';
import { SYSTEM_PYTHON } from '../helpers/exec.js';

t.setTimeout(300_000);
const unavailable = await labUnavailable();
const peers = fileURLToPath(new URL('./peers/', import.meta.url));
/** How long a config change (file → agents and waypoint) may take to be in force. */
const CONFIG_WAIT_MS = 15_000;

const ROUTES = `apiVersion: v1
kind: Service
metadata: { name: echo-v1, namespace: default }
spec:
  selector: { app: echo, version: v1 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-v2, namespace: default }
spec:
  selector: { app: echo, version: v2 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-grpc, namespace: default }
spec:
  selector: { app: echo, version: v1 }
  ports: [{ name: grpc, port: 50051, targetPort: 8080, appProtocol: grpc }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo-routes, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /split } }]
      backendRefs: [{ name: echo-v1, port: 80, weight: 50 }, { name: echo-v2, port: 80, weight: 50 }]
    - matches: [{ path: { type: PathPrefix, value: /only-v2 } }, { headers: [{ name: x-version, value: v2 }] }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /old } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
        - type: RequestHeaderModifier
          requestHeaderModifier: { add: [{ name: x-added, value: by-route }], remove: [x-secret] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: x-response-edit, value: set }] }
      backendRefs: [{ name: echo-v1, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /mirror } }]
      filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: echo-v2, port: 80 } }
      backendRefs: [{ name: echo-v1, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /retry } }]
      retry: { codes: [503], attempts: 2, backoff: 10ms }
      backendRefs: [{ name: echo-v1, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /slow } }]
      timeouts: { request: 500ms }
      backendRefs: [{ name: echo-v1, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /redirect } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: example.com, statusCode: 301 }
    - matches: [{ path: { type: PathPrefix, value: /ws } }, { path: { type: PathPrefix, value: /admin } }, { path: { type: PathPrefix, value: /ok } }]
      backendRefs: [{ name: echo-v1, port: 80 }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: default }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: waypoint }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin/*", "/admin"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: tcp-no-post, namespace: default }
spec:
  targetRefs: [{ group: "", kind: Service, name: tcp-echo }]
  action: DENY
  rules: [{ to: [{ operation: { methods: [POST] } }] }]
`;

/** A second enrolled namespace with no waypoint: L7 rules must not touch it. */
const PLAIN = `apiVersion: v1
kind: Namespace
metadata: { name: plain, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: plain }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: echo, namespace: plain, labels: { app: echo } }
spec:
  serviceAccountName: echo
  nodeName: node-2
  containers:
    - name: echo
      command: [weft, lab, workload, echo, --port, '8080']
      env: [{ name: SERVICE_NAME, value: echo }]
`;

interface Answer {
  readonly pod?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
  readonly attempt?: number;
}

function parse(stdout: string): Answer {
  try {
    return JSON.parse(stdout) as Answer;
  } catch {
    return {};
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** The echo pods' request log lines (one JSON object per request on stdout). */
function echoLog(dir: string, pod: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = readFileSync(join(dir, 'logs', 'pods', `default_${pod}.log`), 'utf8');
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n'))
    if (line.startsWith('{"msg":"request"'))
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line still being written
      }
  return out;
}

t.test(
  'waypoint: HTTPRoute and L7 policy on captured traffic, then back to L4',
  { skip: skipReason(t, unavailable), timeout: 280_000 },
  async (t) => {
    const dir = labDir();
    const env = ['--dir', dir];
    const up = await weft(['lab', 'up', '--demo', ...env]);
    if (process.env.WEFT_TEST_KEEP_LAB) t.comment(`lab kept in ${dir}`);
    t.teardown(
      async () => void (process.env.WEFT_TEST_KEEP_LAB ? undefined : await weft(['lab', 'down', ...env])),
    );
    t.equal(up.code, 0, `lab up: ${up.stderr}`);
    if (up.code !== 0) return;
    const files = mkdtempSync(join(tmpdir(), 'weft-waypoint-'));
    const apply = async (name: string, yaml: string): Promise<void> => {
      const file = join(files, `${name}.yaml`);
      writeFileSync(file, yaml);
      const r = await weft(['apply', '-f', file, ...env]);
      t.equal(r.code, 0, `weft apply ${name}${r.code === 0 ? '' : `: ${r.stderr}`}`);
    };
    t.equal(
      (await weft(['label', 'namespace', 'default', 'istio.io/dataplane-mode=ambient', ...env])).code,
      0,
    );
    const wp = await weft(['waypoint', 'apply', '-n', 'default', '--enroll-namespace', ...env]);
    t.equal(wp.code, 0, `waypoint apply: ${wp.stderr}`);
    await apply('routes', ROUTES);
    await apply('plain', PLAIN);

    const vip = (ns: string, name: string): string => {
      const s = readState(dir).services.find((x) => x.namespace === ns && x.name === name);
      return s?.clusterIps[0] ?? '0.0.0.0';
    };
    const exec = (argv: readonly string[], input?: string) =>
      weft(['lab', 'exec', ...env, 'default/client', '--', ...argv], input);
    const curl = (url: string, ...args: string[]) => exec(['curl', '-sS', '--max-time', '5', ...args, url]);
    const echo = `http://${vip('default', 'echo')}`;

    // Routes are in force once an unmatched path is 404 (before: passthrough, 200).
    let probe = await curl(`${echo}/nomatch`, '-o', '/dev/null', '-w', '%{http_code}');
    for (const deadline = Date.now() + CONFIG_WAIT_MS; probe.stdout !== '404' && Date.now() < deadline;) {
      await sleep(300);
      probe = await curl(`${echo}/nomatch`, '-o', '/dev/null', '-w', '%{http_code}');
    }
    t.equal(probe.stdout, '404', 'with a route attached, an unmatched request is 404');

    // Split: both versions answer /split; header match steers to v2.
    const seen = new Set<string>();
    for (let i = 0; i < 16 && seen.size < 2; i++)
      seen.add(parse((await curl(`${echo}/split`)).stdout).pod ?? '?');
    t.same([...seen].sort(), ['echo-v1', 'echo-v2'], 'a 50/50 split reaches both backends');
    t.equal(parse((await curl(`${echo}/only-v2`)).stdout).pod, 'echo-v2', 'path match → echo-v2');
    t.equal(
      parse((await curl(`${echo}/anything`, '-H', 'x-version: v2')).stdout).pod,
      'echo-v2',
      'header match',
    );

    // Rewrite and header edits, both ways.
    const rewritten = await curl(`${echo}/old/page?q=1`, '-i', '-H', 'x-secret: s3cret');
    const body = parse(rewritten.stdout.slice(rewritten.stdout.indexOf('{')));
    t.equal(body.path, '/new/page', 'ReplacePrefixMatch rewrote the path the backend saw');
    t.equal(body.headers?.['x-added'], 'by-route', 'request header added');
    t.notOk(body.headers?.['x-secret'], 'request header removed');
    t.match(rewritten.stdout, /x-response-edit: set/i, 'response header set');

    // Mirror: echo-v1 answers; echo-v2 gets a copy with the -shadow host.
    const mirrored = await curl(`${echo}/mirror`, '-H', 'x-request-id: mirror-1');
    t.equal(parse(mirrored.stdout).pod, 'echo-v1', 'the primary backend answers');
    let shadow: Record<string, unknown> | undefined;
    for (let deadline = Date.now() + 3000; !shadow && Date.now() < deadline; await sleep(100))
      shadow = echoLog(dir, 'echo-v2').find((e) => e.requestId === 'mirror-1');
    t.ok(shadow, 'the mirror backend received a copy');
    t.match(String(shadow?.host), /-shadow$/, 'the copy carries the -shadow host');

    // Retry: the first two attempts of this id fail with 503; attempts: 2 allows three tries.
    const retried = await curl(`${echo}/retry`, '-H', 'x-request-id: retry-1', '-H', 'x-echo-fail-first: 2');
    t.equal(parse(retried.stdout).attempt, 3, 'answered on the third try');
    const exhausted = await curl(
      `${echo}/retry`,
      '-H',
      'x-request-id: retry-2',
      '-H',
      'x-echo-fail-first: 5',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
    );
    t.equal(exhausted.stdout, '503', 'retries exhausted: the last 503 is passed on');

    // Timeout: a 4 s backend against a 500 ms request timeout (`weft lab exec` itself costs ~0.5 s).
    const slow = await curl(
      `${echo}/slow`,
      '-H',
      'x-echo-delay-ms: 4000',
      '-w',
      ' %{http_code} %{time_total}',
    );
    t.match(slow.stdout, /upstream request timeout 504 [\d.]+$/, 'timeouts.request expiry answers 504');
    // curl's own clock, not the wall time around `weft lab exec` (which a busy machine stretches).
    const seconds = Number(/ ([\d.]+)$/.exec(slow.stdout)?.[1] ?? NaN);
    t.ok(seconds < 2, `and does not wait for the 4 s backend (${seconds} s)`);

    const redirect = await curl(
      `${echo}/redirect/a?x=1`,
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{redirect_url}',
    );
    t.equal(redirect.stdout, '301 http://example.com/redirect/a?x=1', 'RequestRedirect');

    // L7 policy, on the normalized path.
    const denied = await curl(`${echo}/admin/users`, '-w', ' %{http_code}');
    t.equal(denied.stdout, 'RBAC: access denied 403', 'DENY /admin/* → 403 RBAC: access denied');
    t.equal(
      (await curl(`${echo}/ok`, '-o', '/dev/null', '-w', '%{http_code}')).stdout,
      '200',
      'other paths pass',
    );

    // Smuggling and normalization tricks, sent raw; none may reach the backend unrefused.
    const host = vip('default', 'echo');
    const raw = (line: string, headers: string, bodyText = ''): string =>
      `${line}\r\nHost: echo\r\n${headers}\r\n${bodyText}`;
    const cases = {
      dupContentLength: raw(
        'POST /ok HTTP/1.1',
        'x-request-id: smuggle-1\r\nContent-Length: 4\r\nContent-Length: 4\r\n',
        'abcd',
      ),
      clAndTe: raw(
        'POST /ok HTTP/1.1',
        'x-request-id: smuggle-2\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n',
        '0\r\n\r\n',
      ),
      obsFold: raw('GET /ok HTTP/1.1', 'x-request-id: smuggle-3\r\nX-Folded: a\r\n b\r\n'),
      teNotChunked: raw(
        'POST /ok HTTP/1.1',
        'x-request-id: smuggle-4\r\nTransfer-Encoding: gzip, chunked\r\n',
        '0\r\n\r\n',
      ),
      dotDot: raw('GET /ok/%2e%2e/admin/x HTTP/1.1', 'x-request-id: smuggle-5\r\n'),
      slashes: raw('GET //admin/x HTTP/1.1', 'x-request-id: smuggle-6\r\n'),
      encodedSlash: raw('GET /ok%2F..%2Fadmin HTTP/1.1', 'x-request-id: smuggle-7\r\n'),
      fine: raw('GET /ok/%2e/x HTTP/1.1', 'x-request-id: smuggle-8\r\nConnection: close\r\n'),
    };
    const rawOut = await exec([SYSTEM_PYTHON, join(peers, 'raw_http.py'), host, '80'], JSON.stringify(cases));
    const statuses = JSON.parse(rawOut.stdout || '{}') as Record<string, string>;
    t.match(statuses.dupContentLength, /^HTTP\/1\.1 400/, 'duplicate Content-Length: 400');
    t.match(statuses.clAndTe, /^HTTP\/1\.1 400/, 'Content-Length with Transfer-Encoding: 400');
    t.match(statuses.obsFold, /^HTTP\/1\.1 400/, 'obs-fold: 400');
    t.match(statuses.teNotChunked, /^HTTP\/1\.1 501/, 'Transfer-Encoding other than chunked: 501');
    t.match(statuses.dotDot, /^HTTP\/1\.1 403/, '%2e%2e climbing into /admin is normalized, then denied');
    t.match(statuses.slashes, /^HTTP\/1\.1 403/, '//admin is merged to /admin, then denied');
    t.match(statuses.encodedSlash, /^HTTP\/1\.1 400/, '%2F is refused');
    t.match(statuses.fine, /^HTTP\/1\.1 200/, 'a harmless dot segment is normalized and served');
    await sleep(300);
    const reached = echoLog(dir, 'echo-v1').map((e) => String(e.requestId));
    t.same(
      reached.filter((id) => /^smuggle-[1-7]$/.test(id)),
      [],
      'no refused request reached the backend',
    );
    t.equal(
      echoLog(dir, 'echo-v1').find((e) => e.requestId === 'smuggle-8')?.path,
      '/ok/x',
      'normalized path sent',
    );

    // HTTP/2 and gRPC through the waypoint (trailers kept), WebSocket upgrade passed through.
    const h2 = await curl(
      `${echo}/split`,
      '--http2-prior-knowledge',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{http_version}',
    );
    t.equal(h2.stdout, '200 2', 'HTTP/2 (prior knowledge) is proxied');
    const grpcTarget = `${vip('default', 'echo-grpc')}:50051`;
    const grpcOk = JSON.parse(
      (await exec([SYSTEM_PYTHON, join(peers, 'grpc_unary.py'), grpcTarget, '/echo.Echo/Call'])).stdout ||
        '{}',
    ) as Record<string, string>;
    t.equal(grpcOk.code, 'OK', 'gRPC unary through the waypoint');
    t.equal(grpcOk.response, 'hello grpc', 'the message came back');
    const grpcErr = JSON.parse(
      (
        await exec([
          SYSTEM_PYTHON,
          join(peers, 'grpc_unary.py'),
          grpcTarget,
          '/echo.Echo/Call',
          'x-echo-grpc-status=7',
        ])
      ).stdout || '{}',
    ) as Record<string, string>;
    t.equal(grpcErr.code, 'PERMISSION_DENIED', 'grpc-status from the trailers reaches the client');
    if (grpcErr.code !== 'PERMISSION_DENIED')
      t.comment(
        readFileSync(join(dir, 'logs', 'pods', 'default_waypoint-0.log'), 'utf8')
          .split('\n')
          .filter((l) => l.includes('echo.Echo') || l.includes('"level":40') || l.includes('"level":50'))
          .join('\n'),
      );
    const ws = JSON.parse(
      (await exec([SYSTEM_PYTHON, join(peers, 'websocket_echo.py'), host, '80', '/ws'])).stdout || '{}',
    ) as Record<string, unknown>;
    t.match(ws.status, /^HTTP\/1\.1 101/, 'WebSocket upgrade: 101');
    t.equal(ws.acceptOk, true, "Sec-WebSocket-Accept is the backend's, unchanged");
    t.equal(ws.echoed, 'ping over the tunnel', 'bytes flow after the upgrade');

    // TCP through the waypoint: a DENY with only HTTP fields denies every TCP connection (authz.md §6.5).
    const tcpClient = (address: string) =>
      exec([
        SYSTEM_PYTHON,
        '-c',
        'import socket,sys\ns=socket.create_connection((sys.argv[1],9000),timeout=3)\n' +
          'try:\n s.sendall(b"hello"); print(s.recv(100).decode() or "closed")\n' +
          'except OSError as e: print("refused:", e)',
        address,
      ]);
    const tcp = await tcpClient(vip('default', 'tcp-echo'));
    t.notMatch(tcp.stdout, /hello/, 'TCP to tcp-echo is refused by the TCP view of the DENY');

    // Telemetry: Istio's metrics with reporter="waypoint", from the waypoint's :15020.
    const metrics = await weft([
      'lab',
      'exec',
      ...env,
      'default/waypoint-0',
      '--',
      'curl',
      '-s',
      'http://127.0.0.1:15020/metrics',
    ]);
    t.match(
      metrics.stdout,
      /istio_requests_total\{[^}]*reporter="waypoint"[^}]*response_code="403"/,
      'denials are counted',
    );
    t.match(metrics.stdout, /istio_request_duration_milliseconds_bucket\{/, 'durations are recorded');
    t.match(
      metrics.stdout,
      /istio_tcp_connections_opened_total\{reporter="waypoint"[^}]*destination_service_name="tcp-echo"[^}]*response_flags="DENY"/,
      'the denied TCP connection is counted, reporter="waypoint", flag DENY',
    );

    // A Service without a waypoint is untouched by L7 rules: /admin passes there.
    const plain = `http://${vip('plain', 'echo')}`;
    let plainAdmin = await curl(`${plain}/admin/x`, '-o', '/dev/null', '-w', '%{http_code}');
    for (
      const deadline = Date.now() + CONFIG_WAIT_MS;
      plainAdmin.stdout !== '200' && Date.now() < deadline;
    ) {
      await sleep(300);
      plainAdmin = await curl(`${plain}/admin/x`, '-o', '/dev/null', '-w', '%{http_code}');
    }
    t.equal(plainAdmin.stdout, '200', 'no waypoint: no L7 policy');

    // Delete the waypoint while requests run: none fails, and afterwards the namespace is L4 only.
    const loop = exec([
      'sh',
      '-c',
      `for i in $(seq 40); do curl -s -o /dev/null -w '%{http_code}\\n' --max-time 5 ${echo}/ok; sleep 0.1; done`,
    ]);
    await sleep(500);
    const del = await weft(['waypoint', 'delete', '-n', 'default', ...env]);
    t.equal(del.code, 0, `waypoint delete: ${del.stderr}`);
    const codes = (await loop).stdout.trim().split('\n');
    t.equal(codes.length, 40, 'every request of the loop ran');
    t.same(
      codes.filter((c) => c !== '200'),
      [],
      'no request failed while the waypoint went away',
    );
    let after = await curl(`${echo}/admin/x`, '-o', '/dev/null', '-w', '%{http_code}');
    for (const deadline = Date.now() + CONFIG_WAIT_MS; after.stdout !== '200' && Date.now() < deadline;) {
      await sleep(300);
      after = await curl(`${echo}/admin/x`, '-o', '/dev/null', '-w', '%{http_code}');
    }
    t.equal(after.stdout, '200', 'without the waypoint, L7 rules no longer apply (L4 only)');
  },
);
