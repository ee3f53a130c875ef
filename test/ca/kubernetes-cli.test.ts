// `weft ca serve` as built (dist/cli/main.js) on Kubernetes: TokenReview callers, the root in a Secret,
// leader election and the published ConfigMap, against the API server double; no pod informer is
// started; SIGTERM releases the lease. Flag mistakes are usage errors naming the flag, found before
// anything starts.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCertificates, x509 } from '../../core/x509.js';
import { freePort, weftCliPath } from '../../lab/processes.js';
import { run } from '../helpers/exec.js';
import { opensslCsr, spiffeSanExt } from '../helpers/openssl.js';
import { rawCreateCertificate, removeDir } from '../helpers/ca.js';
import { kubeconfigFor, startKubeApiServer } from '../helpers/kube-api-server.js';
import { caCommand } from '../../cli/ca.js';
import { namespace, pod, podWithToken, until, WAIT_MS } from './kubernetes-helpers.js';

const CLI = weftCliPath();
const skip = existsSync(CLI) ? false : `no build at ${CLI}: run npm run build`;
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';

t.test('weft ca serve --auth kubernetes issues to a node agent', { skip }, async (t) => {
  const server = await startKubeApiServer(t, [namespace('weft-system'), namespace('shop')]);
  server.create(pod({ namespace: 'shop', name: 'web-0', serviceAccount: 'web', node: 'node-1' }));
  const token = podWithToken(server, {
    namespace: 'weft-system',
    name: 'weft-agent-1',
    serviceAccount: 'weft-agent',
    node: 'node-1',
  });
  const lines: string[] = [];
  server.on('request', (line) => lines.push(decodeURIComponent(line)));
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  t.teardown(() => removeDir(dir));
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const child = spawn(
    process.execPath,
    [
      CLI,
      'ca',
      'serve',
      '--auth',
      'kubernetes',
      '--config',
      `kubernetes:${kubeconfigFor(t, server)}`,
      '--root-secret',
      'weft-system/weft-ca-root',
      '--leader-election',
      'weft-system/weft-ca',
      '--id',
      'weft-ca-0',
      '--listen',
      `127.0.0.1:${grpcPort}`,
      '--http-listen',
      `127.0.0.1:${httpPort}`,
      '--dir',
      dir,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn' } },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });

  await until('the CA to be ready', async () => {
    if (child.exitCode !== null) throw new Error(`weft ca serve exited: ${stderr}`);
    const res = await fetch(`http://127.0.0.1:${httpPort}/healthz/ready`).catch(() => undefined);
    return res?.ok === true ? true : undefined;
  });
  const secret = server.get('Secret', 'weft-system', 'weft-ca-root');
  const root = Buffer.from(
    (secret?.data as Record<string, string>)['root-cert.pem'] ?? '',
    'base64',
  ).toString();
  t.match(root, /BEGIN CERTIFICATE/, 'the leader created the root Secret');
  t.equal(await (await fetch(`http://127.0.0.1:${httpPort}/trust-bundle`)).text(), root);

  const csr = (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem;
  const res = await rawCreateCertificate({ host: '127.0.0.1', port: grpcPort }, root, {
    token,
    csr,
    identity: WEB,
  });
  t.equal(res.code, grpc.status.OK, res.details);
  const san = parseCertificates(res.chain[0] ?? '')[0]?.getExtension(x509.SubjectAlternativeNameExtension);
  t.same(
    san?.names.items.map((n) => n.value),
    [WEB],
  );
  t.ok(
    lines.some((l) => l.startsWith('GET /api/v1/namespaces/shop/pods?fieldSelector=spec.nodeName=node-1,')),
    'placement asked of the API',
  );
  t.notOk(
    lines.some((l) => l.startsWith('GET /api/v1/pods')),
    'no pod informer: the CA never lists or watches every pod',
  );
  const published = await until('the ConfigMap in shop', () =>
    server.get('ConfigMap', 'shop', 'weft-ca-root-cert'),
  );
  t.same(published.data, { 'root-cert.pem': root }, 'root published');
  t.equal(
    (server.get('Lease', 'weft-system', 'weft-ca')?.spec as { holderIdentity?: string }).holderIdentity,
    'weft-ca-0',
  );

  child.kill('SIGTERM');
  const [code] = (await Promise.race([
    exited,
    new Promise((_, reject) => setTimeout(() => reject(new Error('no exit after SIGTERM')), WAIT_MS)),
  ])) as [number | null];
  t.equal(code, 0, `clean exit: ${stderr}`);
  t.equal(
    (server.get('Lease', 'weft-system', 'weft-ca')?.spec as { holderIdentity?: string }).holderIdentity,
    '',
    'the lease was released on the way out',
  );
});

t.test('flag mistakes are usage errors naming the flag, before anything starts', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--auth', 'kubernetes', '--config', 'file:/tmp'], /--auth kubernetes needs --config kubernetes/],
    [['--auth', 'tokens', '--config', 'kubernetes'], /--auth: expected node-tokens or kubernetes/],
    [['--config', 'file:/tmp', '--root-secret', 'a/b'], /--root-secret needs --config kubernetes/],
    [['--config', 'kubernetes:/x', '--root-secret', 'nope'], /--root-secret: expected NAMESPACE\/NAME/],
    [
      ['--config', 'kubernetes:/x', '--token-audience', 'x'],
      /--token-audience applies to --auth kubernetes only/,
    ],
    [['--config', 'kubernetes:/x', '--id', 'ca-0'], /--id applies to --leader-election only/],
    [
      ['--config', 'kubernetes:/x', '--root-configmap', 'Not_A_Name'],
      /--root-configmap: "Not_A_Name" is not/,
    ],
    [
      ['--auth', 'kubernetes', '--config', 'kubernetes:/x', '--trusted-node-accounts', 'weft-agent'],
      /--trusted-node-accounts: expected NAMESPACE\/SERVICEACCOUNT/,
    ],
    [
      ['--config', 'kubernetes:/x', '--root-secret', 'a/b', '--plugin-certs', '/tmp'],
      /--root-secret and --plugin-certs exclude each other/,
    ],
  ];
  for (const [args, message] of cases)
    await t.rejects(caCommand(['serve', ...args]), { name: 'UsageError', message }, args.join(' '));
  // And the built CLI turns one into exit status 2 with the message.
  if (skip === false) {
    const r = await run(process.execPath, [
      CLI,
      'ca',
      'serve',
      '--config',
      'file:/tmp',
      '--leader-election',
      'a/b',
    ]);
    t.equal(r.code, 2);
    t.match(r.stderr, /--leader-election needs --config kubernetes/);
  }
});
