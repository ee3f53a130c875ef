// cli/waypoint.ts against a temporary folder (`--config file:DIR`) and a fake lab (a state file, no
// processes): what apply writes, what list and status report, the order delete works in, and the flags
// of `weft waypoint run`.
import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UsageError } from '../../cli/flags.js';
import {
  waypointCommand,
  waypointRunOptions,
  type CommandIo,
  type WaypointReport,
  type WaypointStatus,
} from '../../cli/waypoint.js';
import { scanManifestFolder } from '../../lab/cluster/manifest-folder.js';
import { planLab } from '../../lab/cluster/plan.js';
import { expandArgv } from '../../lab/cluster/pod-spec.js';
import { recordProcess, writeLabState, type PodState } from '../../lab/cluster/state.js';
import { initialLabState } from '../../lab/cluster/state-writer.js';

interface Teardowns {
  teardown(fn: () => unknown): void;
}

interface Captured extends CommandIo {
  readonly stdout: string[];
  readonly stderr: string[];
}

function capture(): Captured {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => void stdout.push(l), err: (l) => void stderr.push(l) };
}

async function run(...argv: string[]): Promise<Captured & { code: number }> {
  const io = capture();
  const code = await waypointCommand(argv, io);
  return { ...io, code };
}

/** Every file in the folder with its content and mtime: equal snapshots mean nothing was written. */
function snapshot(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((f) => `${f} ${statSync(join(dir, f)).mtimeMs}\n${readFileSync(join(dir, f), 'utf8')}`)
    .join('\n');
}

function labels(dir: string, id: string): Record<string, string> | undefined {
  const manifest = scanManifestFolder(dir).get(id)?.manifest as {
    metadata?: { labels?: Record<string, string> };
  };
  return manifest?.metadata?.labels;
}

// A namespace bound to the waypoint, Services bound by its label, by their own, and opted out; a pod the
// waypoint does not serve (it is for services); a route, policies, and one object the source rejects.
const WORLD = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: { istio.io/dataplane-mode: ambient }
---
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec:
  clusterIP: 10.96.0.20
  selector: { app: reviews }
  ports: [{ name: http, port: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: shop, labels: { istio.io/use-waypoint: waypoint } }
spec:
  clusterIP: 10.96.0.21
  selector: { app: ratings }
  ports: [{ name: http, port: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: legacy, namespace: shop, labels: { istio.io/use-waypoint: none } }
spec:
  clusterIP: 10.96.0.22
  selector: { app: legacy }
  ports: [{ port: 80 }]
---
apiVersion: v1
kind: Pod
metadata: { name: reviews-v1, namespace: shop, labels: { app: reviews } }
spec: { nodeName: node-1, containers: [{ ports: [{ containerPort: 9080 }] }] }
status: { podIP: 10.77.1.20 }
---
apiVersion: v1
kind: Pod
metadata: { name: pinned, namespace: shop, labels: { app: pinned, istio.io/use-waypoint: waypoint } }
spec: { nodeName: node-1 }
status: { podIP: 10.77.1.21 }
---
apiVersion: v1
kind: Service
metadata: { name: orphan, namespace: other, labels: { istio.io/use-waypoint: ghost } }
spec: { clusterIP: 10.96.0.30, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: broken, namespace: shop }
spec: { ports: [{ port: http }] }
`;

const ROUTES_AND_POLICIES = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: shop }
spec:
  parentRefs: [{ group: '', kind: Service, name: reviews, port: 9080 }]
  rules:
    - backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { type: PathPrefix, value: /nowhere } }]
      backendRefs: [{ name: nope, port: 9080 }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: gw-allow, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: waypoint }]
  rules: [{ to: [{ operation: { methods: [GET] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-deny, namespace: shop }
spec:
  action: DENY
  targetRefs: [{ group: '', kind: Service, name: reviews }]
  rules: [{ to: [{ operation: { paths: [/admin] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: all-waypoints, namespace: istio-system }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: GatewayClass, name: istio-waypoint }]
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: class-not-root, namespace: shop }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: GatewayClass, name: istio-waypoint }]
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: workload-l4, namespace: shop }
spec:
  selector: { matchLabels: { app: reviews } }
  rules: [{}]
`;

function folder(t: Teardowns, ...files: [string, string][]): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-waypoint-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of files) writeFileSync(join(dir, name), text);
  return dir;
}

function fakeLab(t: Teardowns): { dir: string; manifests: string; pods(pods: PodState[]): void } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-waypoint-lab-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const options = { id: 'wp1', dir, nodes: 2, podCidrBase: '10.77', serviceCidr: '10.96.0.0/16' };
  const plan = planLab(options);
  mkdirSync(plan.manifestsDir);
  // The controller is this process, so the lab counts as running.
  const state = initialLabState(plan, options, recordProcess('controller', process.pid));
  writeLabState(dir, state);
  return {
    dir,
    manifests: plan.manifestsDir,
    pods: (pods) => writeLabState(dir, { ...state, pods }),
  };
}

t.test('apply writes the Gateway and Service through weft apply, and says how to run it', async (t) => {
  const dir = folder(t, ['world.yaml', WORLD]);
  const first = await run('apply', '-n', 'shop', '--for', 'service', '--config', `file:${dir}`);
  t.equal(first.code, 0);
  t.same(first.stdout.slice(0, 3), [
    'Gateway shop/waypoint created',
    'Service shop/waypoint created',
    'waypoint shop/waypoint applied',
  ]);
  t.match(
    first.stdout.join('\n'),
    /weft waypoint run --name waypoint --namespace shop --node NODE --config file:/,
  );
  const objects = scanManifestFolder(dir);
  t.match(objects.get('Gateway/shop/waypoint'), {
    file: join(dir, 'waypoint-shop-waypoint.yaml'),
    manifest: {
      metadata: { labels: { 'istio.io/waypoint-for': 'service' } },
      spec: { gatewayClassName: 'istio-waypoint', listeners: [{ port: 15008, protocol: 'HBONE' }] },
    },
  });
  t.notOk(objects.has('Pod/shop/waypoint-0'), 'no lab: no pod');
  t.notMatch(
    readFileSync(join(dir, 'waypoint-shop-waypoint.yaml'), 'utf8'),
    /[&*]a\d/,
    'plain YAML, no aliases',
  );
  t.equal(labels(dir, 'Namespace/shop')?.['istio.io/use-waypoint'], undefined, 'not enrolled unless asked');

  const again = await run(
    'apply',
    '-n',
    'shop',
    '--for',
    'service',
    '--enroll-namespace',
    '--config',
    `file:${dir}`,
  );
  t.equal(again.code, 0);
  t.same(again.stdout.slice(0, 2), ['Gateway shop/waypoint unchanged', 'Service shop/waypoint unchanged']);
  t.equal(again.stdout.at(-1), 'namespace shop labeled with "istio.io/use-waypoint: waypoint"');
  t.match(again.stderr.join('\n'), /no lab runs this waypoint: the agents refuse traffic/);
  t.equal(labels(dir, 'Namespace/shop')?.['istio.io/use-waypoint'], 'waypoint');
});

t.test('apply refuses bad flags and objects it would clobber, naming them', async (t) => {
  const dir = folder(t, [
    'taken.yaml',
    `apiVersion: v1
kind: Service
metadata: { name: taken, namespace: shop }
spec: { selector: { app: web }, ports: [{ port: 80 }] }
`,
  ]);
  const before = snapshot(dir);
  const config = `file:${dir}`;
  await t.rejects(run('apply', '-n', 'shop', '--name', 'Bad_Name', '--config', config), {
    name: 'UsageError',
    message: /--name must be a DNS-1035 label/,
  });
  await t.rejects(run('apply', '-n', 'shop', '--for', 'pods', '--config', config), {
    message: /--for must be one of service, workload, all, none, got "pods"/,
  });
  await t.rejects(run('apply', '--config', config), { message: '--namespace is required' });
  await t.rejects(run('apply', '-n', 'shop', 'extra', '--config', config), UsageError);
  await t.rejects(run('apply', '-n', 'shop', '--config', 'kubernetes'), { message: /only file:DIR/ });
  const clash = await run('apply', '-n', 'shop', '--name', 'taken', '--config', config);
  t.equal(clash.code, 1);
  t.match(clash.stderr.join('\n'), /Service shop\/taken in .*taken.yaml is not the waypoint's/);
  t.equal(snapshot(dir), before, 'nothing was written');
});

t.test(
  'list: every waypoint, what is bound to it, and names that labels give without a Gateway',
  async (t) => {
    const dir = folder(t, ['world.yaml', WORLD]);
    t.equal((await run('apply', '-n', 'shop', '--enroll-namespace', '--config', `file:${dir}`)).code, 0);
    const text = await run('list', '--config', `file:${dir}`);
    t.equal(text.code, 0);
    t.match(text.stdout[0], /^NAMESPACE +NAME +FOR +NAMESPACES +SERVICES +WORKLOADS +PODS$/);
    t.match(text.stdout[1], /^other +ghost +MISSING +- +orphan +- +-$/);
    t.match(text.stdout[2], /^shop +waypoint +service +shop +ratings,reviews +- +-$/);
    t.match(text.stdout[3], /^! other\/ghost: no Gateway of class istio-waypoint; the agents refuse traffic/);

    const json = await run('list', '-n', 'shop', '-o', 'json', '--config', `file:${dir}`);
    const reports = JSON.parse(json.stdout.join('\n')) as WaypointReport[];
    t.equal(reports.length, 1, '-n filters');
    t.match(reports[0], {
      namespace: 'shop',
      name: 'waypoint',
      exists: true,
      waypointFor: 'service',
      listeners: ['mesh 15008/HBONE'],
      namespaces: ['shop'],
      services: [
        { name: 'ratings', via: 'service label' },
        { name: 'reviews', via: 'namespace label' },
      ],
      optedOut: ['Service shop/legacy (istio.io/use-waypoint=none)'],
      notServed: [/^Pod shop\/pinned: the waypoint serves service traffic/],
      pods: [],
    });
    await t.rejects(run('list', '-o', 'yaml', '--config', `file:${dir}`), {
      message: /--output must be text or json/,
    });
  },
);

t.test('status: routes as a controller reports them, bound policies, rejections', async (t) => {
  const dir = folder(t, ['world.yaml', WORLD], ['routes.yaml', ROUTES_AND_POLICIES]);
  t.equal((await run('apply', '-n', 'shop', '--enroll-namespace', '--config', `file:${dir}`)).code, 0);
  const json = await run('status', '-n', 'shop', '-o', 'json', '--config', `file:${dir}`);
  t.equal(json.code, 0);
  const status = JSON.parse(json.stdout.join('\n')) as WaypointStatus;
  t.same(
    status.routes.map((r) => [
      `${r.namespace}/${r.name}`,
      r.parents.map((p) => p.conditions.map((c) => `${c.type}=${c.status} ${c.reason}`)),
    ]),
    [['shop/reviews', [['Accepted=True Accepted', 'ResolvedRefs=False BackendNotFound']]]],
  );
  t.same(
    status.policies.map((p) => [`${p.namespace}/${p.name}`, p.action, p.boundVia, p.reason === undefined]),
    [
      ['istio-system/all-waypoints', 'ALLOW', ['GatewayClass'], true],
      ['shop/class-not-root', 'ALLOW', [], false],
      ['shop/gw-allow', 'ALLOW', ['Gateway'], true],
      ['shop/reviews-deny', 'DENY', ['Service shop/reviews'], true],
    ],
    'targetRefs policies that bind, and one naming the class from the wrong namespace; selector ones are the agents',
  );
  t.match(status.policies[1]?.reason, /binds only from the root namespace \(istio-system\)/);
  t.match(status.rejections, [
    /world.yaml doc 8: Service shop\/broken: spec.ports\[0\].port must be a port number/,
  ]);
  t.equal(status.otherRejections, 0);

  const text = await run('status', '-n', 'shop', '--config', `file:${dir}`);
  const out = text.stdout.join('\n');
  t.match(out, /^Waypoint shop\/waypoint \(for service\)/);
  t.match(
    out,
    /HTTPRoute shop\/reviews -> Service shop\/reviews:9080\n {4}Accepted=True Accepted: Route was valid/,
  );
  t.match(out, /ResolvedRefs=False BackendNotFound: /);
  t.match(out, /shop\/reviews-deny DENY: bound via Service shop\/reviews/);
  t.match(out, /Rejected objects\n {2}\S*world.yaml doc 8: Service shop\/broken/);

  await t.rejects(run('status', '-n', 'shop', '--name', 'nope', '--config', `file:${dir}`), {
    message: /waypoint shop\/nope not found in file:/,
  });
  const ghost = await run('status', '-n', 'other', '--name', 'ghost', '--config', `file:${dir}`);
  t.equal(ghost.code, 1, 'a waypoint that labels name but no Gateway defines is reported, as a failure');
  t.match(
    ghost.stdout.join('\n'),
    /Waypoint other\/ghost MISSING[\s\S]*Service other\/orphan \(service label\)/,
  );
});

t.test('delete unbinds the namespace, waits, then removes the waypoint; user objects stay', async (t) => {
  const dir = folder(t, ['world.yaml', WORLD]);
  t.equal((await run('apply', '-n', 'shop', '--enroll-namespace', '--config', `file:${dir}`)).code, 0);
  const io = capture();
  const deleting = waypointCommand(
    ['delete', '-n', 'shop', '--grace', '600ms', '--config', `file:${dir}`],
    io,
  );
  await sleep(200);
  // Mid-way: agents now send the namespace's traffic straight to its pods, while the Gateway still exists
  // for anything that has not noticed yet.
  t.equal(
    labels(dir, 'Namespace/shop')?.['istio.io/use-waypoint'],
    undefined,
    'the namespace is unbound first',
  );
  t.ok(scanManifestFolder(dir).has('Gateway/shop/waypoint'), 'the Gateway stays through the grace period');
  t.equal(await deleting, 0);
  const objects = scanManifestFolder(dir);
  t.notOk(objects.has('Gateway/shop/waypoint'));
  t.notOk(objects.has('Service/shop/waypoint'));
  t.equal(
    labels(dir, 'Service/shop/ratings')?.['istio.io/use-waypoint'],
    'waypoint',
    "a Service's own label is not ours to edit",
  );
  t.same(io.stdout, [
    'namespace shop unlabeled ("istio.io/use-waypoint: waypoint" removed)',
    'waiting 600 ms for the agents to route around the waypoint…',
    'Gateway shop/waypoint deleted',
    'Service shop/waypoint deleted',
    'waypoint shop/waypoint deleted',
  ]);
  t.match(
    io.stderr.join('\n'),
    /Service shop\/ratings is labelled istio.io\/use-waypoint=waypoint: its traffic is refused/,
  );
  t.match(io.stderr.join('\n'), /Pod shop\/pinned is labelled/);
  await t.rejects(run('delete', '-n', 'shop', '--grace', '0', '--config', `file:${dir}`), {
    message: /waypoint shop\/waypoint not found/,
  });
});

t.test('in a lab: the pod runs weft waypoint run; --enroll-namespace waits until it is ready', async (t) => {
  const lab = fakeLab(t);
  writeFileSync(join(lab.manifests, 'world.yaml'), WORLD.replace(/^ {2}clusterIP: .*\n/gm, ''));
  const notReady = capture();
  await t.rejects(
    waypointCommand(
      ['apply', '-n', 'shop', '--enroll-namespace', '--timeout', '500ms', '--dir', lab.dir],
      notReady,
    ),
    {
      message:
        /waypoint pod shop\/waypoint-0 not ready after 500 ms \(not started yet.*namespace shop not labelled/,
    },
  );
  t.equal(
    labels(lab.manifests, 'Namespace/shop')?.['istio.io/use-waypoint'],
    undefined,
    'not enrolled meanwhile',
  );
  const pod = scanManifestFolder(lab.manifests).get('Pod/shop/waypoint-0')?.manifest as {
    metadata: { labels: Record<string, string> };
    spec: { serviceAccountName: string; containers: { command: string[] }[] };
  };
  t.match(pod.metadata.labels, {
    'gateway.networking.k8s.io/gateway-name': 'waypoint',
    'istio.io/dataplane-mode': 'none',
  });
  t.equal(pod.spec.serviceAccountName, 'waypoint');
  const command = expandArgv(pod.spec.containers[0]!.command, { NODE_NAME: 'node-2' });
  t.match(
    command.join(' '),
    /^weft waypoint run --name waypoint --namespace shop --node node-2 --config file:\S+\/manifests /,
  );
  t.match(
    command.join(' '),
    /--token-file \S+\/tokens\/node-2.token --admin-socket \S+\/admin\/waypoint-\$\(POD_NAMESPACE\)\.\$\(POD_NAME\)\.sock --drain-deadline 4s$/,
  );

  // What the controller reports once the pod accepts connections.
  lab.pods([
    {
      namespace: 'shop',
      name: 'waypoint-0',
      node: 'node-2',
      ip: '10.77.2.10',
      netns: 'weft-wp1-pod-shop.waypoint-0',
      veth: 'wpx',
      phase: 'ready',
      process: null,
      restarts: 0,
      command,
      log: '/dev/null',
    },
  ]);
  const ready = await run('apply', '-n', 'shop', '--enroll-namespace', '--dir', lab.dir);
  t.equal(ready.code, 0);
  t.match(ready.stdout, [
    'Gateway shop/waypoint unchanged',
    'Service shop/waypoint unchanged',
    'Pod shop/waypoint-0 unchanged',
  ]);
  t.match(ready.stdout.at(-1), 'namespace shop labeled with "istio.io/use-waypoint: waypoint"');
  t.notMatch(ready.stdout.join('\n'), /weft waypoint run/, 'no run hint: the lab runs it');

  const list = await run('list', '-o', 'json', '--dir', lab.dir);
  const report = (JSON.parse(list.stdout.join('\n')) as WaypointReport[]).find((r) => r.namespace === 'shop');
  // The manifest has no IP yet (the real controller writes one), so it is not an endpoint yet.
  t.match(report?.pods, [{ name: 'waypoint-0', phase: 'ready', endpoint: false }]);

  const deleted = await run('delete', '-n', 'shop', '--grace', '0', '--dir', lab.dir);
  t.equal(deleted.code, 0);
  t.match(deleted.stdout, [
    'namespace shop unlabeled ("istio.io/use-waypoint: waypoint" removed)',
    /deleted/,
    /deleted/,
    /deleted/,
  ]);
  t.notOk(scanManifestFolder(lab.manifests).has('Pod/shop/waypoint-0'), 'the pod goes with it');
});

t.test('weft waypoint run: flags to WaypointOptions, defaults as the agent has them', async (t) => {
  const required = ['--name', 'wp', '--namespace', 'shop', '--node', 'node-1', '--config', 'file:/m'];
  const creds = ['--ca-root', '/ca/root.pem', '--token-file', '/t/node-1.token'];
  const options = waypointRunOptions([...required, ...creds]);
  t.match(options, {
    name: 'wp',
    namespace: 'shop',
    serviceAccount: 'wp',
    nodeName: 'node-1',
    trustDomain: 'cluster.local',
    configSource: 'file:/m',
    ca: {
      address: { host: '127.0.0.1', port: 15012 },
      rootCertFile: '/ca/root.pem',
      tokenFile: '/t/node-1.token',
      serverName: undefined,
    },
    certTtlSeconds: 86400,
    hboneListen: { host: '0.0.0.0', port: 15008 },
    adminListen: { host: '127.0.0.1', port: 15000 },
    metricsListen: { host: '0.0.0.0', port: 15020 },
    readinessListen: { host: '0.0.0.0', port: 15021 },
    otlpEndpoint: undefined,
  });
  const custom = waypointRunOptions([
    ...required,
    ...creds,
    '--service-account',
    'wp-sa',
    '--ca-server-name',
    'localhost',
    '--cert-ttl',
    '1h',
    '--hbone',
    '10.0.0.1:16008',
    '--admin',
    'off',
    '--otlp-endpoint',
    'http://collector:4318/v1/traces',
  ]);
  t.match(custom, {
    serviceAccount: 'wp-sa',
    ca: { serverName: 'localhost' },
    certTtlSeconds: 3600,
    hboneListen: { host: '10.0.0.1', port: 16008 },
    adminListen: null,
    otlpEndpoint: 'http://collector:4318/v1/traces',
  });
  t.throws(() => waypointRunOptions([...required]), { message: '--ca-root is required' });
  t.throws(() => waypointRunOptions([...required, ...creds, '--otlp-endpoint', 'collector:4318']), {
    message: /--otlp-endpoint: expected an http\(s\) URL/,
  });
  t.throws(() => waypointRunOptions([...required, ...creds, '--service-account', 'Bad SA']), {
    message: /--service-account must be a DNS-1123 subdomain/,
  });
  t.throws(() => waypointRunOptions([...required, ...creds, '--hbone', 'nope']), {
    message: /--hbone: expected host:port/,
  });
  t.throws(() => waypointRunOptions(['--name', 'wp', '--namespace', 'shop', '--nod', 'x']), UsageError);
  await t.rejects(run('frobnicate'), { name: 'UsageError', message: /weft waypoint apply/ });
});
