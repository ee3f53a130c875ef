// `weft bench kube-scale` at a tiny scale (200 pods): the same code as the full run (the API server
// double, the file baseline, the kubernetes consumer, churn, relist, the reference), checked for the
// report's shape and for numbers that can only come from a run that worked. Plus the generator, the
// slope and the heap snapshot reader on their own. The children run from dist/ (npm test builds).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatKubeScale, runKubeScale, slope } from '../../bench/kube-scale.js';
import { summarizeHeapSnapshot } from '../../bench/kube-scale/heap-summary.js';
import {
  expectedCounts,
  initialObjects,
  podIp,
  scaleSpec,
  SENT_LABEL,
  SENT_UNSET,
  serviceName,
} from '../../bench/kube-scale/objects.js';
import { convertManifest } from '../../core/convert/index.js';
import type { KubeObject } from '../helpers/kube-api-server.js';

t.setTimeout(60_000);

function labelsOf(object: KubeObject): Record<string, string> {
  return (object.metadata.labels ?? {}) as Record<string, string>;
}

t.test('the generated set: deterministic, unique addresses, every object converts', async (t) => {
  const spec = scaleSpec(1000, 100, { seed: 7 });
  const first = [...initialObjects(spec)];
  const again = [...initialObjects(spec)];
  t.same(again, first, 'the same seed gives the same objects');
  const other = [...initialObjects(scaleSpec(1000, 100, { seed: 8 }))];
  t.not(JSON.stringify(other[200]), JSON.stringify(first[200]), 'another seed, other uids and names');

  const byKind = new Map<string, KubeObject[]>();
  for (const object of first) byKind.set(object.kind, [...(byKind.get(object.kind) ?? []), object]);
  const counts = Object.fromEntries([...byKind].map(([kind, objects]) => [kind, objects.length]));
  t.same(counts, expectedCounts(spec));

  const pods = byKind.get('Pod') ?? [];
  const ips = pods.map((pod) => (pod.status as { podIP: string }).podIP);
  t.equal(new Set(ips).size, pods.length, 'pod IPs are unique');
  t.equal(ips[0], podIp(0));
  const names = pods.map((pod) => `${pod.metadata.namespace}/${pod.metadata.name}`);
  t.equal(new Set(names).size, pods.length, 'pod names are unique');
  const uids = first.map((object) => object.metadata.uid);
  t.equal(new Set(uids).size, first.length, 'uids are unique');
  const vips = (byKind.get('Service') ?? []).map((s) => (s.spec as { clusterIP: string }).clusterIP);
  t.equal(new Set(vips).size, spec.services, 'cluster IPs are unique');
  t.ok(
    pods.every((pod) => (pod.metadata.managedFields as unknown[]).length === 2),
    'pods carry managedFields as a real API server returns them',
  );
  t.ok(
    first.every(
      (o) =>
        o.kind === 'Namespace' || o.kind === 'AuthorizationPolicy' || labelsOf(o)[SENT_LABEL] === SENT_UNSET,
    ),
    'every churned kind carries the latency label',
  );

  // Each Service's slice lists exactly its pods' addresses, on their nodes.
  const slice = (byKind.get('EndpointSlice') ?? []).find(
    (s) => labelsOf(s)['kubernetes.io/service-name'] === serviceName(3),
  );
  const endpoints = (slice?.endpoints ?? []) as { addresses: string[]; nodeName: string }[];
  const selected = pods.filter((pod) => labelsOf(pod).app === serviceName(3));
  t.equal(selected.length, 10, '1000 pods over 100 Services: 10 each');
  t.same(
    endpoints.map((e) => e.addresses[0]),
    selected.map((pod) => (pod.status as { podIP: string }).podIP),
  );
  t.same(
    endpoints.map((e) => e.nodeName),
    selected.map((pod) => (pod.spec as { nodeName: string }).nodeName),
  );

  const rejected = first
    .map((object) => ({ object, result: convertManifest(object as unknown as Record<string, unknown>) }))
    .filter(({ result }) => result.outcome !== 'converted');
  t.same(
    rejected.map(({ object }) => `${object.kind} ${object.metadata.name}`),
    [],
    'Weft converts every generated object',
  );
});

t.test('scaleSpec refuses impossible sets', async (t) => {
  t.throws(() => scaleSpec(0, 1));
  t.throws(() => scaleSpec(10, 11), /services/);
  t.equal(scaleSpec(100_000, 10_000).namespaces, 500);
  t.equal(scaleSpec(100_000, 10_000).nodes, 500);
  t.equal(scaleSpec(100, 5).policies, 5, 'no more policies than Services to name them after');
});

t.test('slope: least squares, flat is 0', async (t) => {
  t.equal(slope([0, 1, 2, 3], [5, 5, 5, 5]), 0);
  t.equal(slope([0, 1, 2, 3], [1, 3, 5, 7]), 2);
  t.equal(Math.round(slope([0, 1, 2, 3, 4], [10, 9, 11, 10, 10]) * 100) / 100, 0.1);
  t.equal(slope([1], [1]), 0, 'one point has no slope');
});

t.test('a heap snapshot is summarised by type and name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-heap-summary-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'bare.heapsnapshot');
  const r = spawnSync(process.execPath, [
    '-e',
    `globalThis.keep = Array.from({ length: 5000 }, (_, i) => ({ marker: 'x'.repeat(40) + i }));
     require('node:v8').writeHeapSnapshot(${JSON.stringify(path)});`,
  ]);
  t.equal(r.status, 0, String(r.stderr));
  const rows = summarizeHeapSnapshot(path, 1000, 50);
  t.ok(rows.length > 5);
  t.ok(
    rows.every((row, i) => i === 0 || (rows[i - 1]?.selfBytes ?? 0) >= row.selfBytes),
    'largest first',
  );
  const strings = rows.find((row) => row.what === 'string');
  t.ok(strings !== undefined && strings.count >= 5000, 'the 5000 strings are counted');
  t.ok(
    rows.some((row) => row.what === 'object Object' && row.count >= 5000),
    'and their objects',
  );
});

t.test('a tiny run of the whole bench', async (t) => {
  const lines: string[] = [];
  const report = await runKubeScale({
    pods: 200,
    services: 20,
    churnSeconds: 2,
    rate: 50,
    sampleSeconds: 1,
    reference: true,
    settleMs: 200,
    out: (line) => lines.push(line),
  });
  const expected = expectedCounts(report.spec);
  t.equal(
    report.objects,
    Object.values(expected).reduce((a, b) => a + b, 0),
  );
  t.ok(report.jsonBytesPerPod > 4000, `realistic objects: ${report.jsonBytesPerPod} B of JSON per pod`);
  for (const side of [report.kubernetes, report.file]) {
    t.same(side.present, expected, `${side.source}: the whole set reached the store`);
    t.equal(side.rejections, 0, `${side.source}: nothing rejected`);
    t.ok(side.syncSeconds > 0 && side.syncSeconds < 30, `${side.source}: synced in ${side.syncSeconds} s`);
    t.ok(side.firstBatchSeconds <= side.syncSeconds);
    t.ok(side.heapMiB > side.baseHeapMiB, `${side.source}: the set takes heap`);
    t.ok(
      side.heapBytesPerPod > 0 && side.heapBytesPerPod < 1e6,
      `${side.source}: ${side.heapBytesPerPod} B/pod`,
    );
    t.ok(side.storeOnlyHeapMiB > 0 && side.storeOnlyHeapMiB <= side.endHeapMiB + 0.5, 'the store alone');
    // At 200 pods the indexes' share (~100 KB in all) is within the heap's noise, so it is only summed
    // here; the real run (100,000 pods) reports each.
    t.ok(
      side.recordBytesPerPod > 0 && side.recordBytesPerPod + side.indexBytesPerPod > 0,
      'records and indexes take memory',
    );
    t.ok(side.identitiesOnNode > 0, `${side.source}: the agent's node view has identities`);
    t.ok(side.rssMiB > side.heapMiB);
  }
  t.equal(report.kubernetes.batches, 1, 'the first list is one batch');
  for (const ratio of [report.ratios.heap, report.ratios.rss, report.ratios.syncTime])
    t.ok(Number.isFinite(ratio) && ratio > 0, `ratio ${ratio}`);

  const c = report.churn;
  t.ok(c.seconds >= 1.9 && c.seconds < 3, `churned ${c.seconds} s`);
  t.ok(c.writes >= 80 && c.writes <= 110, `${c.writes} writes at 50/s for 2 s`);
  t.ok(c.counts.podUpdates > 0, 'pods were updated');
  t.ok(
    c.latencyMs.count >= 0.9 * c.stamped && c.latencyMs.count <= c.stamped,
    `${c.latencyMs.count} of ${c.stamped} seen`,
  );
  t.ok(c.latencyMs.p50 > 0 && c.latencyMs.p50 <= c.latencyMs.p99 && c.latencyMs.p99 < 2000, 'latency');
  t.equal(c.samples.length, 3, 'a sample before the churn and after each 1 s segment');
  t.ok(c.cpuSeconds > 0 && c.cpuPercentOfCore < 100, `consumer CPU ${c.cpuPercentOfCore} %`);
  t.ok(Number.isFinite(c.heapSlopeMiBPerMin));

  const l = report.relist;
  t.equal(l.updated, 2);
  t.equal(l.deleted, 3, 'a pod, a slice and a Service deleted while the watches were down');
  t.ok(l.seconds > 0 && l.seconds < 30, `relisted in ${l.seconds} s`);
  t.ok(l.batches >= 1);
  t.ok(l.heapRightAfterMiB > 0 && l.heapAfterMiB > 0);

  t.ok(report.reference !== undefined && report.reference.churn.writes > 0, 'the reference churned');
  t.ok(report.cpuPerWriteRatio !== undefined && report.cpuPerWriteRatio > 0);

  const table = formatKubeScale(report);
  t.match(table, /\| heap used after sync, after GC \(MiB\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
  t.match(table, /\| write → applied latency p99 \(ms\) \|/);
  t.match(table, /\| watches cut → every change applied \(s\) \| [\d.]+ \|/);
  t.ok(
    lines.some((line) => line.startsWith('churn:')),
    'progress lines',
  );
});
