// cli/explain.ts against a temporary manifest folder (`--manifests DIR`): text and JSON output, the
// verdict before and after a policy change in the folder, and usage errors.
import t from 'tap';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXPLAIN_USAGE, explainCommand } from '../../cli/explain.js';
import { UsageError } from '../../cli/flags.js';
import type { CommandIo } from '../../cli/waypoint.js';
import type { Explanation } from '../../explain/explanation.js';
import { ExplainQueryError } from '../../explain/query.js';
import YAML from 'yaml';
import { CLUSTER_TABLE } from '../helpers/cluster-table.js';
import { kubeconfigFor, startKubeApiServer } from '../helpers/kube-api-server.js';
import { BASE, CLIENT_ID, policy, WEB_SERVICE_REF } from './fixtures.js';

interface Captured extends CommandIo {
  readonly stdout: string[];
  readonly stderr: string[];
}

function capture(): Captured {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => void stdout.push(l), err: (l) => void stderr.push(l) };
}

function folder(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-explain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'base.yaml'), BASE);
  return dir;
}

async function run(...argv: string[]): Promise<Captured & { code: number }> {
  const io = capture();
  const code = await explainCommand(argv, io);
  return { ...io, code };
}

async function json(...argv: string[]): Promise<Explanation> {
  const { code, stdout } = await run(...argv, '-o', 'json');
  if (code !== 0) throw new Error(`exit ${code}`);
  return JSON.parse(stdout.join('\n')) as Explanation;
}

const DENY_POST = policy('shop', 'deny-post', {
  ...WEB_SERVICE_REF,
  action: 'DENY',
  rules: [{ to: [{ operation: { methods: ['POST'] } }] }],
});

t.test('-o json: the explanation with the flow-event verdict fields', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'policy.yaml'), DENY_POST);
  const e = await json(
    '--manifests',
    dir,
    '--from',
    'shop/client',
    '--to-service',
    'shop/web',
    '--port',
    '80',
    '--method',
    'POST',
    '--path',
    '/api/orders',
    '--header',
    'x-user: alice',
  );
  t.match(e, {
    source: { namespace: 'shop', pod: 'client', identity: CLIENT_ID, captured: true },
    destination: { ip: '10.96.0.10', port: 80, service: { namespace: 'shop', name: 'web' } },
    path: 'waypoint',
    waypoint: { namespace: 'shop', name: 'waypoint' },
    http: { method: 'POST', path: '/api/orders' },
    verdict: 'DENIED',
    policy: 'shop/deny-post',
    rule: 0,
    decidedAt: 'waypoint',
    reason: 'explicitly denied by shop/deny-post',
  });
  t.match(e.steps[1], { at: 'waypoint', request: { headers: [['x-user', 'alice']] } });
});

t.test('text output, and the verdict before and after a policy change', async (t) => {
  const dir = folder(t);
  const args = ['--manifests', dir, '--from', 'shop/client', '--to-service', 'shop/web', '--port', '80'];
  const before = await run(...args, '--method', 'POST', '--path', '/api');
  t.equal(before.code, 0);
  const text = before.stdout.join('\n');
  t.match(text, /^path +waypoint \(shop\/waypoint\)$/m);
  t.match(text, /^verdict +ALLOWED at the destination agent$/m);
  t.match(text, /route +shop\/web\/rules\[0\] -> shop\/web:80/);

  writeFileSync(join(dir, 'policy.yaml'), DENY_POST);
  const after = await run(...args, '--method', 'POST', '--path', '/api');
  t.match(after.stdout.join('\n'), /^verdict +DENIED by shop\/deny-post rule 0 at the waypoint$/m);
  // A GET is still allowed under the same policy.
  t.match(await json(...args, '--path', '/api'), { verdict: 'ALLOWED' });

  unlinkSync(join(dir, 'policy.yaml'));
  t.match(await json(...args, '--method', 'POST', '--path', '/api'), { verdict: 'ALLOWED' });
});

t.test('plaintext from an address, an identity at an address, a pod IP', async (t) => {
  const dir = folder(t);
  writeFileSync(
    join(dir, 'strict.yaml'),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict, namespace: data }
spec: { mtls: { mode: STRICT } }
`,
  );
  const to = ['--manifests', dir, '--to', 'data/db-0', '--port', '5432'];
  t.match(await json('--from-ip', '192.168.7.7', ...to), {
    path: 'direct',
    verdict: 'DENIED',
    policy: 'istio-system/istio_converted_static_strict',
  });
  t.match(await json('--from-identity', 'cluster.local/ns/shop/sa/client', '--from-ip', '10.1.1.11', ...to), {
    path: 'tunnel',
    verdict: 'ALLOWED',
  });
  t.match(await json('--from', 'shop/client', '--manifests', dir, '--to-ip', '10.1.2.30', '--port', '5432'), {
    destination: { namespace: 'data', pod: 'db-0' },
    verdict: 'ALLOWED',
  });
});

t.test('rejected objects are warned about on stderr', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'bad.yaml'), policy('shop', 'bad', { action: 'MAYBE' }));
  const { code, stderr } = await run(
    '--manifests',
    dir,
    '--from',
    'shop/client',
    '--to',
    'data/db-0',
    '--port',
    '5432',
  );
  t.equal(code, 0);
  t.match(stderr.join('\n'), /1 object\(s\) rejected/);
  t.match(stderr.join('\n'), /shop\/bad/);
});

t.test('usage errors name the flag', async (t) => {
  const dir = folder(t);
  const m = ['--manifests', dir];
  const cases: [string[], RegExp][] = [
    [[...m, '--to', 'data/db-0', '--port', '5432'], /the source is required/],
    [[...m, '--from', 'shop/client', '--port', '5432'], /the destination is required/],
    [[...m, '--from', 'shop/client', '--to', 'data/db-0'], /--port is required/],
    [
      [...m, '--from', 'shop/client', '--to', 'data/db-0', '--to-ip', '1.2.3.4', '--port', '1'],
      /give one destination/,
    ],
    [[...m, '--from', 'client', '--to', 'data/db-0', '--port', '5432'], /--from: expected NAMESPACE\/NAME/],
    [[...m, '--from-identity', CLIENT_ID, '--to', 'data/db-0', '--port', '5432'], /needs --from-ip/],
    [[...m, '--from', 'shop/client', '--to', 'data/db-0', '--port', 'http'], /--port: expected 1-65535/],
    [[...m, '--from', 'shop/client', '--to', 'data/db-0', '--port', '1', '--header', 'nocolon'], /--header/],
    [[...m, '--from', 'shop/client', '--to', 'data/db-0', '--port', '1', '--path', 'api'], /--path/],
    [[...m, '--from', 'shop/client', '--to', 'data/db-0', '--port', '1', '-o', 'yaml'], /--output/],
    [[...m, '--from', 'shop/client', '--to', 'data/db-0', '--port', '1', '--bogus'], /bogus/],
    [[...m, '--config', 'file:/x', '--from', 'shop/client', '--to', 'data/db-0', '--port', '1'], /not both/],
  ];
  t.plan(cases.length);
  for (const [argv, message] of cases)
    await t.rejects(explainCommand(argv, capture()), { name: UsageError.name, message }, message.source);
});

t.test('a query the config cannot answer fails with the reason', async (t) => {
  const dir = folder(t);
  await t.rejects(
    explainCommand(
      ['--manifests', dir, '--from', 'shop/nope', '--to', 'data/db-0', '--port', '5432'],
      capture(),
    ),
    ExplainQueryError,
  );
  await t.rejects(
    explainCommand(
      ['--manifests', join(dir, 'missing'), '--from', 'shop/client', '--to', 'data/db-0', '--port', '1'],
      capture(),
    ),
    /not a folder/,
  );
});

t.test('--help prints the usage', async (t) => {
  const { code, stdout } = await run('--help');
  t.equal(code, 0);
  t.equal(stdout.join('\n'), EXPLAIN_USAGE);
});

t.test(
  '--config kubernetes:KUBECONFIG reads the API once and explains as from the same manifests',
  async (t) => {
    const server = await startKubeApiServer(t, CLUSTER_TABLE);
    const kubeconfig = kubeconfigFor(t, server);
    const dir = mkdtempSync(join(tmpdir(), 'weft-explain-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'cluster.yaml'), CLUSTER_TABLE.map((o) => YAML.stringify(o)).join('---\n'));
    const flows = [
      [
        '--from',
        'shop/client',
        '--to-service',
        'shop/web',
        '--port',
        '80',
        '--method',
        'POST',
        '--path',
        '/api',
      ],
      ['--from', 'shop/client', '--to-service', 'data/db', '--port', '5432'],
      ['--from-ip', '10.1.1.30', '--to', 'data/db-0', '--port', '5432'],
    ];
    for (const flow of flows) {
      const fromApi = await run('--config', `kubernetes:${kubeconfig}`, ...flow, '-o', 'json');
      const fromFiles = await run('--manifests', dir, ...flow, '-o', 'json');
      t.equal(fromApi.code, 0);
      t.same(JSON.parse(fromApi.stdout.join('\n')), JSON.parse(fromFiles.stdout.join('\n')), flow.join(' '));
      t.match(fromApi.stderr.join('\n'), /bad-action/, 'the rejected object is named');
    }
    t.match(await json('--config', `kubernetes:${kubeconfig}`, ...flows[0]!), {
      verdict: 'DENIED',
      decidedAt: 'waypoint',
      reason: 'allow policies exist, but none allowed',
    });
  },
);
