// lab/cluster/waypoint.ts (the objects `weft waypoint apply` writes) and lab/cluster/apply.ts
// deleteObjects (what `weft waypoint delete` removes with).
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertManifest } from '../../../core/convert/index.js';
import { activeSource, deleteObjects } from '../../../lab/cluster/apply.js';
import { scanManifestFolder } from '../../../lab/cluster/manifest-folder.js';
import { planLab } from '../../../lab/cluster/plan.js';
import { expandArgv, podEnv, readPodRunSpec } from '../../../lab/cluster/pod-spec.js';
import {
  waypointManifests,
  waypointPod,
  waypointSpecProblem,
  type WaypointSpec,
} from '../../../lab/cluster/waypoint.js';

const spec: WaypointSpec = { namespace: 'shop', name: 'waypoint', waypointFor: 'all' };

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
}

t.test('the Gateway, Service and pod are what Istio makes, and core/convert accepts them', async (t) => {
  const plan = planLab({
    id: 'w1',
    dir: '/tmp/weft-wp',
    nodes: 2,
    podCidrBase: '10.77',
    serviceCidr: '10.96.0.0/16',
  });
  const [gateway, service, pod, ...rest] = waypointManifests(spec, plan);
  t.equal(rest.length, 0);
  t.same(gateway, {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'waypoint', namespace: 'shop', labels: { 'istio.io/waypoint-for': 'all' } },
    spec: {
      gatewayClassName: 'istio-waypoint',
      listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }],
    },
  });
  t.match(service, {
    kind: 'Service',
    metadata: { name: 'waypoint', namespace: 'shop' },
    spec: {
      selector: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' },
      ports: [{ name: 'mesh', port: 15008 }],
    },
  });
  t.match(pod, {
    kind: 'Pod',
    metadata: {
      name: 'waypoint-0',
      namespace: 'shop',
      labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'istio.io/dataplane-mode': 'none' },
    },
    spec: { serviceAccountName: 'waypoint' },
  });
  for (const m of [gateway!, service!, pod!])
    t.equal(convertManifest(m, { file: 'x.yaml' }).outcome, 'converted', `${String(m.kind)} converts`);
  t.same(
    waypointManifests({ ...spec, waypointFor: undefined }, undefined).map((m) => m.kind),
    ['Gateway', 'Service'],
    'no pod outside a lab',
  );
  t.equal(
    (waypointManifests({ ...spec, waypointFor: undefined }, undefined)[0]!.metadata as { labels?: unknown })
      .labels,
    undefined,
    'no waypoint-for label unless asked',
  );
});

t.test('on whichever node the lab puts it, the pod runs with that node and its token', async (t) => {
  // A `$` in the lab's folder must survive the expansion that fills in the node.
  const plan = planLab({
    id: 'w2',
    dir: '/tmp/weft $(odd)',
    nodes: 3,
    podCidrBase: '10.77',
    serviceCidr: '10.96.0.0/16',
  });
  const manifest = waypointPod(spec, plan);
  const run = readPodRunSpec(manifest);
  if ('reason' in run) throw new Error(run.reason);
  t.plan(plan.nodes.length * 6 + 1);
  t.same(run.argv.slice(0, 3), ['weft', 'waypoint', 'run']);
  for (const node of plan.nodes) {
    const env = podEnv(run, {
      namespace: 'shop',
      name: 'waypoint-0',
      serviceAccount: 'waypoint',
      node,
      ip: '10.77.1.10',
      labels: {},
    });
    const argv = expandArgv(run.argv, env);
    t.equal(flag(argv, '--node'), node.name);
    t.equal(flag(argv, '--token-file'), node.tokenFile, 'the token file the lab writes for that node');
    t.equal(flag(argv, '--config'), `file:${plan.manifestsDir}`);
    t.equal(flag(argv, '--ca-root'), plan.ca.rootCertFile);
    t.equal(flag(argv, '--ca-address'), `${plan.ca.grpc.host}:${plan.ca.grpc.port}`);
    t.same(
      [flag(argv, '--name'), flag(argv, '--namespace'), flag(argv, '--ca-server-name')],
      ['waypoint', 'shop', 'localhost'],
    );
  }
});

t.test('waypointSpecProblem names the flag and the rule', async (t) => {
  const cases: [string, string, string | undefined, RegExp | undefined][] = [
    ['shop', 'waypoint', undefined, undefined],
    ['shop', 'wp-1', 'workload', undefined],
    ['shop', 'Waypoint', undefined, /^--name must be a DNS-1035 label.*got "Waypoint"/],
    ['shop', '1wp', undefined, /^--name must be a DNS-1035 label/],
    ['shop', 'a.b', undefined, /^--name/],
    ['shop', 'x'.repeat(64), undefined, /^--name/],
    ['Shop', 'waypoint', undefined, /^--namespace must be a DNS-1123 label/],
    ['shop', 'waypoint', 'pods', /^--for must be one of service, workload, all, none, got "pods"/],
  ];
  t.plan(cases.length);
  for (const [namespace, name, waypointFor, want] of cases) {
    const problem = waypointSpecProblem({ namespace, name, waypointFor });
    if (want === undefined) t.equal(problem, undefined, `${namespace}/${name}`);
    else t.match(problem, want, `${namespace}/${name} ${waypointFor ?? ''}`);
  }
});

t.test('deleteObjects removes documents and List items, keeps the rest, removes emptied files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-delete-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const source = activeSource(`file:${dir}`, '/nonexistent');
  const multi = join(dir, 'multi.yaml');
  writeFileSync(
    multi,
    `# keep me
apiVersion: v1
kind: Namespace
metadata: { name: shop } # and me
---
apiVersion: v1
kind: Service
metadata: { name: gone, namespace: shop }
spec: { ports: [{ port: 80 }] }
---
apiVersion: v1
kind: List
items:
  - { apiVersion: v1, kind: Pod, metadata: { name: p1, namespace: shop } }
  - { apiVersion: v1, kind: Pod, metadata: { name: p2, namespace: shop } }
  - { apiVersion: v1, kind: Pod, metadata: { name: p3, namespace: shop } }
`,
  );
  const only = join(dir, 'only.yaml');
  writeFileSync(only, 'apiVersion: v1\nkind: Pod\nmetadata: { name: lone, namespace: shop }\n');
  const json = join(dir, 'one.json');
  writeFileSync(
    json,
    JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'j', namespace: 'shop' } }),
  );
  const key = (kind: string, name: string) => ({ kind, namespace: 'shop', name });

  const deleted = deleteObjects(source, [
    key('Service', 'gone'),
    key('Pod', 'p1'),
    key('Pod', 'p3'),
    key('Pod', 'lone'),
    key('Pod', 'j'),
    key('Pod', 'not-there'),
  ]);
  t.same(
    deleted.map((d) => d.object).sort(),
    ['Pod shop/j', 'Pod shop/lone', 'Pod shop/p1', 'Pod shop/p3', 'Service shop/gone'],
    'what was there is deleted; a missing key is skipped',
  );
  t.same([...scanManifestFolder(dir).keys()].sort(), ['Namespace/shop', 'Pod/shop/p2']);
  t.match(readFileSync(multi, 'utf8'), /# keep me[\s\S]*# and me/, 'comments of kept documents stay');
  t.notOk(existsSync(only), 'a file left empty is removed');
  t.notOk(existsSync(json), 'a JSON file of one object is removed');

  writeFileSync(
    join(dir, 'broken.yaml'),
    'apiVersion: v1\nkind: Pod\nmetadata: { name: b, namespace: shop }\n---\n: : [\n',
  );
  t.throws(() => deleteObjects(source, [key('Pod', 'b')]), /broken.yaml: document 2 has a YAML syntax error/);
  t.ok(existsSync(join(dir, 'broken.yaml')));
});
