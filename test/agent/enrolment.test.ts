// Enrolment follows labels: enrol on the namespace label, opt out per pod, drain before removal,
// adopt what a previous agent left — all without touching the kernel (a Map stands in for the BPF map).
import t from 'tap';
import { rootLogger } from '../../core/log.js';
import { ConfigStore } from '../../core/store.js';
import { convertManifest } from '../../core/convert/index.js';
import type { ConfigRecord } from '../../core/model/index.js';
import { LocalWorkloads } from '../../agent/workloads.js';
import {
  EnrolmentController,
  CAPTURE_BOTH,
  CAPTURE_DRAIN,
  type EnrolmentTable,
} from '../../agent/enrolment.js';
import { ManualClock } from '../helpers/clock.js';

class MapTable implements EnrolmentTable {
  readonly map = new Map<string, number>();
  writes = 0;
  set(ip: string, flags: number): void {
    this.writes++;
    this.map.set(ip, flags);
  }
  delete(ip: string): void {
    this.writes++;
    this.map.delete(ip);
  }
  entries(): Iterable<[string, number]> {
    return [...this.map];
  }
}

function record(manifest: unknown): ConfigRecord {
  const r = convertManifest(manifest);
  if (r.outcome !== 'converted') throw new Error(JSON.stringify(r));
  return r.record;
}

const ns = (labels: Record<string, string>) =>
  record({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels } });
const pod = (name: string, ip: string, node: string, labels: Record<string, string> = {}) =>
  record({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', uid: `u-${name}`, labels },
    spec: { serviceAccountName: 'sa', nodeName: node },
    status: { phase: 'Running', podIP: ip },
  });

t.test('labels drive the table; leaving drains first; restarts adopt the table', (t) => {
  const store = new ConfigStore();
  const clock = new ManualClock();
  const table = new MapTable();
  const local = new LocalWorkloads(store, 'node-1', 'cluster.local');
  const ctl = new EnrolmentController(local, table, clock, rootLogger, 1000);
  const apply = (upserts: ConfigRecord[]) => {
    store.apply({ upserts, deletes: [], rejections: [] });
    ctl.sync();
  };

  apply([
    ns({}),
    pod('a', '10.0.1.1', 'node-1'),
    pod('b', '10.0.1.2', 'node-1'),
    pod('c', '10.0.2.1', 'node-2'),
  ]);
  t.same([...table.map], [], 'no label: nothing captured');

  apply([ns({ 'istio.io/dataplane-mode': 'ambient' })]);
  t.same(
    Object.fromEntries(table.map),
    { '10.0.1.1': CAPTURE_BOTH, '10.0.1.2': CAPTURE_BOTH },
    'label: this node’s pods only',
  );

  const writes = table.writes;
  ctl.sync();
  t.equal(table.writes, writes, 'an unchanged config writes nothing');

  apply([pod('b', '10.0.1.2', 'node-1', { 'istio.io/dataplane-mode': 'none' })]);
  t.equal(table.map.get('10.0.1.2'), CAPTURE_BOTH | CAPTURE_DRAIN, 'opt-out drains first');
  clock.advance(999);
  t.ok(table.map.has('10.0.1.2'), 'still draining');
  clock.advance(1);
  t.notOk(table.map.has('10.0.1.2'), 'removed after the drain');

  apply([ns({})]);
  t.equal(table.map.get('10.0.1.1'), CAPTURE_BOTH | CAPTURE_DRAIN, 'label removed: draining');
  apply([ns({ 'istio.io/dataplane-mode': 'ambient' })]);
  t.equal(table.map.get('10.0.1.1'), CAPTURE_BOTH, 'label back during the drain: captured again');
  clock.advance(5000);
  t.equal(table.map.get('10.0.1.1'), CAPTURE_BOTH, 'the cancelled drain does not remove it');

  const restarted = new EnrolmentController(local, table, clock, rootLogger, 1000);
  const before = table.writes;
  restarted.sync();
  t.equal(table.writes, before, 'a restarted agent adopts the table without rewriting it');
  table.map.set('10.9.9.9', CAPTURE_BOTH);
  const third = new EnrolmentController(local, table, clock, rootLogger, 1000);
  third.sync();
  t.equal(
    table.map.get('10.9.9.9'),
    CAPTURE_BOTH | CAPTURE_DRAIN,
    'a stale entry left by a previous agent is drained',
  );
  ctl.close();
  restarted.close();
  third.close();
  t.end();
});
