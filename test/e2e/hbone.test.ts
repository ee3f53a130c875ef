// The data plane end to end, on the real kernel: two nodes in network namespaces, the CA and two agents
// as processes, workloads as Python echo servers, clients that nobody here wrote (Python h2 over ssl,
// a hand-rolled SOCKS5 client). Root only; skips with the reason elsewhere (and fails under CI).
import t from 'tap';
import { once } from 'node:events';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { MeshLab } from '../../lab/mesh-lab.js';
import { manifestFile, namespaceManifest, podManifest } from '../../lab/manifests.js';
import { netnsUnavailable } from '../../lab/netns.js';
import { waitFor } from '../../lab/processes.js';
import { issueCertificateFiles } from '../../lab/certs.js';
import { missingPython, skipReason, SYSTEM_PYTHON } from '../helpers/exec.js';

const peers = fileURLToPath(new URL('./peers/', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)));

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/client';
const SERVER = 'spiffe://cluster.local/ns/shop/sa/server';

const MANIFESTS = manifestFile(
  namespaceManifest('shop', { ambient: true }),
  namespaceManifest('legacy'),
  podManifest({
    name: 'client-0',
    namespace: 'shop',
    serviceAccount: 'client',
    node: 'node-1',
    ip: '10.77.1.10',
  }),
  podManifest({
    name: 'server-0',
    namespace: 'shop',
    serviceAccount: 'server',
    node: 'node-2',
    ip: '10.77.2.10',
  }),
  podManifest({
    name: 'plain-0',
    namespace: 'legacy',
    serviceAccount: 'plain',
    node: 'node-2',
    ip: '10.77.2.11',
  }),
  `apiVersion: v1
kind: Service
metadata: { name: server, namespace: shop }
spec:
  clusterIP: 10.96.0.10
  selector: { app: server }
  ports: [{ name: tcp-echo, port: 80, targetPort: 8080 }]
`,
);

const DENY_CLIENT = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-client, namespace: shop }
spec:
  selector: { matchLabels: { app: server } }
  action: DENY
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/shop/sa/client"] } }] }]
`;

interface JsonLine {
  [k: string]: unknown;
}

function python(lab: MeshLab, node: 0 | 1, script: string, args: string[]): ChildProcess {
  return lab
    .node(node)
    .spawn(SYSTEM_PYTHON, [join(peers, script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

async function runPython(lab: MeshLab, node: 0 | 1, script: string, args: string[]): Promise<JsonLine> {
  const child = python(lab, node, script, args);
  child.stdin!.end();
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await once(child, 'exit');
  const last = out.trim().split('\n').at(-1);
  if (!last) throw new Error(`${script} printed nothing: ${err}`);
  return JSON.parse(last) as JsonLine;
}

const unavailable =
  (await netnsUnavailable()) ??
  (await missingPython(['h2', 'ssl'])) ??
  (built ? undefined : 'no build: run npm run build');

t.test('HBONE between two nodes', { skip: skipReason(t, unavailable), timeout: 120_000 }, async (t) => {
  const lab = await MeshLab.start({ 'mesh.yaml': MANIFESTS });
  t.teardown(() => lab.stop());
  // Workloads: the server pod's echo, the non-enrolled pod's echo, and decoys the agent must never dial.
  const servers = python(lab, 1, 'tcp_servers.py', [
    '10.77.2.10:8080',
    '10.77.2.11:8080',
    '127.0.0.1:8080',
    '10.77.0.2:8080',
  ]);
  t.teardown(() => servers.stdin!.end());
  const accepts: string[] = [];
  const lines = createInterface({ input: servers.stdout! });
  lines.on('line', (l) => accepts.push(l));
  await waitFor('echo servers', async () => (accepts.includes('listening') ? true : undefined));
  for (const i of [0, 1] as const)
    await waitFor('certificates', async () => {
      const dump = await lab.configDump(i);
      return dump.certificates.length > 0 && dump.certificates.every((c) => c.state === 'available')
        ? true
        : undefined;
    });

  await t.test('SOCKS5 → pod IP, Service VIP and a non-enrolled pod; half-close carried', async (t) => {
    for (const dst of ['10.77.2.10:8080', '10.96.0.10:80', '10.77.2.11:8080']) {
      const r = await runPython(lab, 0, 'socks_client.py', ['10.77.1.10', '127.0.0.1:15080', dst, '200000']);
      t.match(r, { reply: 0, echo: true, eof: true }, `${dst}: ${JSON.stringify(r)}`);
    }
  });

  const certDir = mkdtempSync(join(tmpdir(), 'weft-e2e-certs-'));
  const client = await issueCertificateFiles(lab.caDir, 'cluster.local', CLIENT, certDir, 'client');
  const hbone = (authority: string, c: { cert: string; key: string } | undefined, method = 'CONNECT') =>
    runPython(lab, 0, 'hbone_client.py', [
      '10.77.2.10:15008',
      lab.rootCertFile,
      c?.cert ?? '-',
      c?.key ?? '-',
      authority,
      method,
      '100000',
    ]);

  await t.test(
    'Python h2 over ssl, with a CA-issued client certificate, tunnels to the workload',
    async (t) => {
      const r = await hbone('10.77.2.10:8080', client);
      t.match(
        r,
        { status: 200, echo: true, stream_ended: true, alpn: 'h2', tls_version: 'TLSv1.3' },
        JSON.stringify(r),
      );
      t.same(r.peer_uris, [SERVER], 'the server presented the destination workload identity');
    },
  );

  await t.test('CONNECT to anything the agent does not own is refused and nothing is dialled', async (t) => {
    const before = accepts.length;
    const cases: [string, number][] = [
      ['127.0.0.1:8080', 503],
      ['10.77.2.10:15008', 503],
      ['10.77.2.10:15000', 503],
      ['10.77.1.10:8080', 503],
      ['10.77.2.11:8080', 503],
      ['10.77.0.2:8080', 503],
      ['1.2.3.4:80', 503],
      ['server.shop.svc.cluster.local:80', 400],
      ['10.77.2.10', 400],
    ];
    for (const [authority, status] of cases) {
      const r = await hbone(authority, client);
      t.equal(r.status, status, `${authority} → ${status} (${JSON.stringify(r)})`);
    }
    const get = await hbone('10.77.2.10:8080', client, 'GET');
    t.equal(get.status, 400, 'a method other than CONNECT is 400');
    t.same(accepts.slice(before), [], 'no decoy or foreign address was dialled');
  });

  await t.test('clients without a valid mesh identity are refused at TLS', async (t) => {
    const none = await hbone('10.77.2.10:8080', undefined);
    t.notOk(none.status, `no client certificate: no response (${JSON.stringify(none)})`);
    t.ok(none.error ?? none.closed ?? none.goaway !== undefined, 'the connection fails');

    const otherDir = mkdtempSync(join(tmpdir(), 'weft-other-ca-'));
    const foreign = await issueCertificateFiles(otherDir, 'cluster.local', CLIENT, certDir, 'foreign');
    const r2 = await hbone('10.77.2.10:8080', foreign);
    t.notOk(r2.status, `another CA: refused (${JSON.stringify(r2)})`);

    const otherTd = await issueCertificateFiles(
      lab.caDir,
      'cluster.local',
      'spiffe://other.org/ns/shop/sa/client',
      certDir,
      'othertd',
    );
    const r3 = await hbone('10.77.2.10:8080', otherTd);
    t.notOk(r3.status, `another trust domain: refused (${JSON.stringify(r3)})`);

    const ok = await hbone('10.77.2.10:8080', client);
    t.equal(ok.status, 200, 'valid tunnels keep working');
  });

  await t.test('a DENY policy refuses new connections and closes open ones', async (t) => {
    const held = python(lab, 0, 'socks_client.py', [
      '10.77.1.10',
      '127.0.0.1:15080',
      '10.77.2.10:8080',
      '1000',
      'hold',
    ]);
    const heldLines = createInterface({ input: held.stdout! });
    const [first] = (await once(heldLines, 'line')) as [string];
    t.match(JSON.parse(first), { phase: 'open', echo: true }, 'connection open before the policy');

    await lab.applyAndWait(() => lab.writeManifest('deny.yaml', DENY_CLIENT));
    const denied = await runPython(lab, 0, 'socks_client.py', [
      '10.77.1.10',
      '127.0.0.1:15080',
      '10.77.2.10:8080',
      '100',
    ]);
    t.not(denied.reply, 0, `new connection refused (${JSON.stringify(denied)})`);
    const h = await hbone('10.77.2.10:8080', client);
    t.equal(h.status, 401, 'CONNECT answered 401');

    held.stdin!.write('go\n');
    const [second] = (await once(heldLines, 'line')) as [string];
    t.match(JSON.parse(second), { second_echo: false }, `the open connection was closed (${second})`);

    await lab.applyAndWait(() => lab.removeManifest('deny.yaml'));
    const again = await runPython(lab, 0, 'socks_client.py', [
      '10.77.1.10',
      '127.0.0.1:15080',
      '10.77.2.10:8080',
      '100',
    ]);
    t.match(again, { reply: 0, echo: true }, 'allowed again once the policy is gone');
  });

  await t.test('Istio TCP metrics on :15020 from both reporters', async (t) => {
    const dst = (await lab.httpGet(1, 'http://127.0.0.1:15020/metrics')) ?? '';
    t.match(
      dst,
      /istio_tcp_connections_opened_total\{[^}]*reporter="destination"[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/shop\/sa\/client"[^}]*destination_workload="server-0"[^}]*connection_security_policy="mutual_tls"[^}]*\} [1-9]/,
    );
    t.match(dst, /istio_tcp_received_bytes_total\{[^}]*reporter="destination"[^}]*\} [1-9]/);
    t.match(
      dst,
      /istio_tcp_connections_failed_total\{[^}]*response_flags="DENY"[^}]*\} [1-9]/,
      'denials counted',
    );
    const src = (await lab.httpGet(0, 'http://127.0.0.1:15020/stats/prometheus')) ?? '';
    t.match(
      src,
      /istio_tcp_connections_opened_total\{[^}]*reporter="source"[^}]*destination_service="server.shop.svc.cluster.local"/,
    );
  });
});
