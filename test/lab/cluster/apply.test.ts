// lab/cluster/apply.ts and manifest-folder.ts on a real folder: `weft apply` checks everything before
// writing anything, keeps what the lab filled in, and edits files in place; `weft label` likewise.
import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  activeSource,
  applyManifests,
  labelNamespace,
  parseLabelChange,
  type ActiveSource,
} from '../../../lab/cluster/apply.js';
import { editObjectInFile, scanManifestFolder } from '../../../lab/cluster/manifest-folder.js';
import { planLab } from '../../../lab/cluster/plan.js';
import { recordProcess, writeLabState } from '../../../lab/cluster/state.js';
import { initialLabState } from '../../../lab/cluster/state-writer.js';

interface Teardowns {
  teardown(fn: () => unknown): void;
}

/** A lab directory with a state file (no processes: only the folder and the lab's shape matter here). */
function fakeLab(t: Teardowns): { dir: string; source: ActiveSource } {
  const dir = mkdtempSync(join(tmpdir(), 'weft-apply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const options = { id: 'ap1', dir, nodes: 2, podCidrBase: '10.77', serviceCidr: '10.96.0.0/16' };
  const plan = planLab(options);
  mkdirSync(plan.manifestsDir);
  writeLabState(dir, initialLabState(plan, options, recordProcess('controller', process.pid)));
  return { dir, source: activeSource(undefined, dir) };
}

/** Every file in the folder with its content and mtime: equal snapshots mean nothing was written. */
function snapshot(dir: string): string {
  return readdirSync(dir)
    .sort()
    .map((f) => `${f} ${statSync(join(dir, f)).mtimeMs}\n${readFileSync(join(dir, f), 'utf8')}`)
    .join('\n');
}

const POD = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
spec:
  nodeName: node-2
  containers:
    - command: [sleep, infinity]
`;

t.test('an invalid object rejects the whole apply, naming file, document, object and field', async (t) => {
  const { source } = fakeLab(t);
  writeFileSync(join(source.manifestsDir, 'existing.yaml'), POD.replace('name: web', 'name: old'));
  const before = snapshot(source.manifestsDir);
  const result = applyManifests(source, [
    {
      name: 'bad.yaml',
      text: `${POD}---
apiVersion: v1
kind: Service
metadata: { name: svc, namespace: shop }
spec:
  ports: [{ port: http }]
---
apiVersion: v1
kind: Pod
metadata: { name: elsewhere, namespace: shop }
spec: { nodeName: node-9 }
---
apiVersion: v1
kind: Pod
metadata: { name: web, namespace: shop }
`,
    },
  ]);
  t.plan(6);
  t.equal(result.changes.length, 0);
  t.match(
    result.rejections[0],
    'bad.yaml doc 2: Service shop/svc: spec.ports[0].port must be a port number 1-65535, got "http"',
  );
  t.match(
    result.rejections[1],
    'bad.yaml doc 3: Pod shop/elsewhere: spec.nodeName must name a node of this lab (node-1, node-2), got "node-9"',
  );
  t.match(result.rejections[2], /bad.yaml doc 4: Pod shop\/web: is defined twice/);
  t.equal(result.rejections.length, 3);
  t.equal(snapshot(source.manifestsDir), before, 'the folder is untouched');
});

t.test('apply creates, then configures in place, keeping the IP and node the lab wrote', async (t) => {
  const { source } = fakeLab(t);
  t.plan(9);
  const first = applyManifests(source, [
    { name: '/somewhere/web.yaml', text: POD.replace('  nodeName: node-2\n', '') },
  ]);
  t.same(
    first.changes.map((c) => [c.object, c.action]),
    [['Pod shop/web', 'created']],
  );
  const file = join(source.manifestsDir, 'web.yaml');
  t.equal(first.changes[0]!.file, file);
  // What the controller does: schedule the pod and write its IP back.
  editObjectInFile(
    file,
    { kind: 'Pod', namespace: 'shop', name: 'web' },
    {
      set: [
        [['spec', 'nodeName'], 'node-1'],
        [['status', 'podIP'], '10.77.1.10'],
      ],
    },
  );
  const again = applyManifests(source, [{ name: 'web.yaml', text: POD.replace('  nodeName: node-2\n', '') }]);
  t.same(
    again.changes.map((c) => c.action),
    ['unchanged'],
    'status and scheduled node are not the file’s to drop',
  );
  const changed = applyManifests(source, [
    { name: 'other-name.yaml', text: POD.replace('  nodeName: node-2\n', '').replace('infinity', "'3600'") },
  ]);
  t.same(
    changed.changes.map((c) => [c.action, c.file]),
    [['configured', file]],
    'replaced where it lives',
  );
  const web = scanManifestFolder(source.manifestsDir).get('Pod/shop/web')!.manifest as {
    spec: { nodeName: string; containers: { command: string[] }[] };
    status: { podIP: string };
  };
  t.same(web.spec.containers[0]!.command, ['sleep', '3600']);
  t.equal(web.status.podIP, '10.77.1.10');
  t.equal(web.spec.nodeName, 'node-1');
  const moved = applyManifests(source, [{ name: 'web.yaml', text: POD }]);
  t.same(
    moved.changes.map((c) => c.action),
    ['configured'],
  );
  const after = scanManifestFolder(source.manifestsDir).get('Pod/shop/web')!.manifest as { status?: unknown };
  t.equal(after.status, undefined, 'moved to node-2: the node-1 IP is dropped for a new one');
});

t.test(
  'kinds the mesh does not model are written with a warning; --config file:DIR skips lab checks',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-apply-plain-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const source = activeSource(`file:${dir}`, '/nonexistent');
    t.plan(3);
    const result = applyManifests(source, [
      {
        name: 'x.yaml',
        text: `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: d }\n---\n${POD.replace('node-2', 'node-99')}`,
      },
    ]);
    t.same(result.rejections, []);
    t.match(result.warnings[0], /Deployment default\/d: .*not a kind Weft uses.*only Pods run in the lab/);
    t.same(
      result.changes.map((c) => c.action),
      ['created', 'created'],
    );
  },
);

t.test('edits keep comments and the other documents; List items and JSON files too', async (t) => {
  const { source } = fakeLab(t);
  const yamlFile = join(source.manifestsDir, 'multi.yaml');
  writeFileSync(
    yamlFile,
    `# keep me\napiVersion: v1\nkind: Namespace\nmetadata: { name: a } # and me\n---\napiVersion: v1\nkind: List\nitems:\n  - { apiVersion: v1, kind: Pod, metadata: { name: p1 } }\n  - { apiVersion: v1, kind: Pod, metadata: { name: p2 } }\n`,
  );
  const jsonFile = join(source.manifestsDir, 'one.json');
  writeFileSync(jsonFile, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'j' } }));
  t.plan(6);
  t.ok(
    editObjectInFile(
      yamlFile,
      { kind: 'Pod', namespace: 'default', name: 'p2' },
      { set: [[['status', 'podIP'], '10.77.1.3']] },
    ),
  );
  t.ok(
    editObjectInFile(
      jsonFile,
      { kind: 'Pod', namespace: 'default', name: 'j' },
      { set: [[['status', 'podIP'], '10.77.1.4']] },
    ),
  );
  const text = readFileSync(yamlFile, 'utf8');
  t.match(text, /# keep me[\s\S]*# and me/);
  const objects = scanManifestFolder(source.manifestsDir);
  t.match(objects.get('Pod/default/p2')?.manifest, { status: { podIP: '10.77.1.3' } });
  t.equal((objects.get('Pod/default/p1')?.manifest as { status?: unknown }).status, undefined);
  t.match(objects.get('Pod/default/j')?.manifest, { status: { podIP: '10.77.1.4' } });
});

t.test('label namespace: set, remove, create, and reject bad keys', async (t) => {
  const { source } = fakeLab(t);
  writeFileSync(
    join(source.manifestsDir, 'ns.yaml'),
    '# the namespace\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n',
  );
  t.plan(8);
  const set = labelNamespace(source, 'default', [parseLabelChange('istio.io/dataplane-mode=ambient')]);
  t.same([set.action, set.labels], ['labeled', { 'istio.io/dataplane-mode': 'ambient' }]);
  t.match(
    readFileSync(join(source.manifestsDir, 'ns.yaml'), 'utf8'),
    /# the namespace[\s\S]*istio.io\/dataplane-mode: ambient/,
  );
  t.equal(
    labelNamespace(source, 'default', [parseLabelChange('istio.io/dataplane-mode=ambient')]).action,
    'unchanged',
  );
  const removed = labelNamespace(source, 'default', [parseLabelChange('istio.io/dataplane-mode-')]);
  t.same([removed.action, removed.labels], ['labeled', {}]);
  const created = labelNamespace(source, 'shop', [parseLabelChange('team=payments')]);
  t.same([created.action, created.file], ['created', join(source.manifestsDir, 'namespace-shop.yaml')]);
  t.match(scanManifestFolder(source.manifestsDir).get('Namespace/shop')?.manifest, {
    metadata: { labels: { team: 'payments' } },
  });
  t.throws(() => parseLabelChange('bad key=x'), /label key "bad key"/);
  t.throws(() => parseLabelChange('novalue'), /expected key=value, or key- to remove/);
});

t.test('a fixed pod IP another pod already has is rejected', async (t) => {
  const { source } = fakeLab(t);
  writeFileSync(
    join(source.manifestsDir, 'a.yaml'),
    'apiVersion: v1\nkind: Pod\nmetadata: { name: a }\nstatus: { podIP: 10.77.1.5 }\n',
  );
  t.plan(3);
  const text = (name: string) =>
    `apiVersion: v1\nkind: Pod\nmetadata: { name: ${name} }\nstatus: { podIP: 10.77.1.5 }\n`;
  const clash = applyManifests(source, [{ name: 'b.yaml', text: text('b') }]);
  t.same(clash.rejections, [
    'b.yaml doc 1: Pod default/b: status.podIP 10.77.1.5 is already used by Pod default/a',
  ]);
  const same = applyManifests(source, [{ name: 'a2.yaml', text: text('a') }]);
  t.same(same.rejections, [], 'a pod keeps its own IP');
  const twice = applyManifests(source, [
    { name: 'c.yaml', text: `${text('c')}---\n${text('d')}`.replaceAll('1.5', '1.6') },
  ]);
  t.match(twice.rejections, [
    /doc 2: Pod default\/d: status.podIP 10.77.1.6 is already used by Pod default\/c/,
  ]);
});
