// Which batches make the agent re-authorize its live connections: policy, namespace and its own
// node's pods, not the rest of the cluster's churn.
import t from 'tap';
import { ConfigStore } from '../../core/store.js';
import { convertManifest } from '../../core/convert/index.js';
import type { ConfigRecord, ObjectKey } from '../../core/model/index.js';
import { LocalChanges } from '../../agent/local-changes.js';
import { CLUSTER_TABLE } from '../helpers/cluster-table.js';

function record(manifest: object): ConfigRecord {
  const result = convertManifest(manifest as Record<string, unknown>);
  if (result.outcome !== 'converted') throw new Error(`not converted: ${JSON.stringify(result)}`);
  return result.record;
}

t.test('only policy, namespace and local-pod changes can change a verdict on this node', (t) => {
  const store = new ConfigStore();
  const valid = CLUSTER_TABLE.filter((o) => o.metadata.name !== 'bad-action');
  store.apply({ upserts: valid.map(record), deletes: [], rejections: [] });
  const changes = new LocalChanges(store, 'node-1');
  t.ok(changes.affectsThisNode(undefined), 'the first load counts');

  let last: boolean | undefined;
  store.on('applied', (_v, change) => (last = changes.affectsThisNode(change)));
  const key = (kind: ObjectKey['kind'], namespace: string, name: string): ObjectKey => ({
    kind,
    namespace,
    name,
  });
  const upsert = (name: string) =>
    store.apply({
      upserts: [record(CLUSTER_TABLE.find((o) => o.metadata.name === name)!)],
      deletes: [],
      rejections: [],
    });

  upsert('web-1'); // on node-2
  t.equal(last, false, 'a pod on another node');
  upsert('web'); // the Service
  t.equal(last, false, 'a Service');
  upsert('web-0'); // on node-1
  t.equal(last, true, 'a pod on this node');
  upsert('db-from-web');
  t.equal(last, true, 'an AuthorizationPolicy');
  upsert('data');
  t.equal(last, true, 'a Namespace');
  store.apply({ upserts: [], deletes: [key('Pod', 'shop', 'client')], rejections: [] });
  t.equal(last, true, 'a pod of this node deleted');
  store.apply({ upserts: [], deletes: [key('Pod', 'data', 'db-0')], rejections: [] });
  t.equal(last, false, "another node's pod deleted");
  const web0 = CLUSTER_TABLE.find((o) => o.metadata.name === 'web-0')!;
  const moved = { ...web0, spec: { ...(web0.spec as object), nodeName: 'node-2' } };
  store.apply({ upserts: [record(moved)], deletes: [], rejections: [] });
  t.equal(last, true, 'a pod that left this node');
  store.apply({ upserts: [record(moved)], deletes: [], rejections: [] });
  t.equal(last, false, 'and once gone, its changes are elsewhere');
  t.end();
});
