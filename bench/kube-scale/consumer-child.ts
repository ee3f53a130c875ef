// The consumer's process of `weft bench kube-scale`: the agent's config path and nothing else. A config
// source (`kubernetes:KUBECONFIG` or, for the baseline, `file:DIR`) feeds a ConfigStore, and every applied
// batch recomputes the agent's per-node view (the identities it keeps certificates for), as the agent
// does. Run with --expose-gc: memory is read after a forced GC, so it is what is live, not what is
// waiting to be collected.
import { performance } from 'node:perf_hooks';
import { writeHeapSnapshot } from 'node:v8';
import { cpuProfileFromEnv } from '../../core/cpu-profile.js';
import { identitiesForNode } from '../../agent/identity/node-identities.js';
import type { ConfigRecord, ObjectKey } from '../../core/model/index.js';
import { createConfigSource, type ConfigSource } from '../../core/sources/index.js';
import { AGENT_KINDS } from '../../agent/kinds.js';
import { ConfigStore, type AppliedChange } from '../../core/store.js';
import { sampleProcess } from '../proc-stats.js';
import { newHistogram, summarize } from '../load/recorder.js';
import {
  expectedCounts,
  namespaceName,
  namespaceOfService,
  podName,
  policyObject,
  SENT_LABEL,
  SENT_UNSET,
  serviceName,
  sliceName,
  type GeneratedKind,
} from './objects.js';
import { readPeakRss, resetPeakRss } from './peak-rss.js';
import {
  clockUs,
  reportFailures,
  tellParent,
  type ConsumerCommand,
  type ConsumerOptions,
  type MemorySample,
  type ObjectRef,
} from './protocol.js';

reportFailures();
const options = JSON.parse(process.argv[2] ?? '{}') as ConsumerOptions;
const { spec } = options;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('kube-scale consumer: run node with --expose-gc');
const forceGc: () => void = gc;

/** Two full collections: the second frees what the first's finalisation (weak maps, closures) let go. */
function collectedMemory(): MemorySample {
  forceGc();
  forceGc();
  const m = process.memoryUsage();
  return {
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    rssBytes: m.rss,
  };
}

const TRUST_DOMAIN = 'cluster.local';

/**
 * A (re)list's last page and the informer's list of stubs stay referenced until its watch is open
 * again, a few ms after the store has everything; memory is read `settleMs` later, to leave that out.
 */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, options.settleMs));
}
let store = new ConfigStore();
let identitiesOnNode = 0;
let batches = 0;
// What the node agent does on every applied batch that depends on the store alone.
store.on('applied', () => {
  batches += 1;
  identitiesOnNode = identitiesForNode(store, options.nodeName, TRUST_DOMAIN).size;
});

function key(ref: ObjectRef): ObjectKey {
  return { kind: ref.kind, namespace: ref.kind === 'Namespace' ? '' : ref.namespace, name: ref.name };
}

/** Which objects of the generated initial set the store holds, by kind. O(objects). */
function present(): Record<string, number> {
  const found: Record<GeneratedKind, number> = {
    Namespace: 0,
    Service: 0,
    Pod: 0,
    EndpointSlice: 0,
    AuthorizationPolicy: 0,
  };
  const has = (ref: ObjectRef): void => {
    if (store.get(key(ref)) !== undefined) found[ref.kind] += 1;
  };
  for (let n = 0; n < spec.namespaces; n += 1)
    has({ kind: 'Namespace', namespace: '', name: namespaceName(n) });
  for (let s = 0; s < spec.services; s += 1) {
    const namespace = namespaceOfService(spec, s);
    has({ kind: 'Service', namespace, name: serviceName(s) });
    has({ kind: 'EndpointSlice', namespace, name: sliceName(spec, s) });
  }
  for (let slot = 0; slot < spec.pods; slot += 1) {
    const namespace = namespaceOfService(spec, slot % spec.services);
    has({ kind: 'Pod', namespace, name: podName(spec, slot, 0) });
  }
  for (let p = 0; p < spec.policies; p += 1) {
    const { metadata } = policyObject(spec, p);
    has({ kind: 'AuthorizationPolicy', namespace: metadata.namespace ?? '', name: metadata.name });
  }
  return found;
}

/** Every record in the store (of the kinds the set has), for measuring them without the store's indexes. */
function allRecords(): ConfigRecord[] {
  const records: ConfigRecord[] = [];
  for (const namespace of store.namespaces()) {
    records.push(namespace, ...store.workloadsInNamespace(namespace.name));
    records.push(...store.authorizationPolicies(namespace.name));
  }
  for (let s = 0; s < spec.services; s += 1) {
    const namespace = namespaceOfService(spec, s);
    for (const ref of [
      { kind: 'Service', namespace, name: serviceName(s) },
      { kind: 'EndpointSlice', namespace, name: sliceName(spec, s) },
    ] as const) {
      const record = store.get(key(ref));
      if (record !== undefined) records.push(record);
    }
  }
  return records;
}

// The agent's view of the cluster: what it asks the API server for.
let source: ConfigSource | undefined = createConfigSource(options.source, {
  kubernetes: { kinds: AGENT_KINDS },
});

async function sync(): Promise<void> {
  const before = collectedMemory();
  const peakReset = resetPeakRss(process.pid);
  const cpu0 = sampleProcess(process.pid).cpuSeconds;
  const t0 = performance.now();
  let firstBatchMs = 0;
  store.once('applied', () => (firstBatchMs = performance.now() - t0));
  await source?.start(store);
  const syncMs = performance.now() - t0;
  const cpuSeconds = sampleProcess(process.pid).cpuSeconds - cpu0;
  const peakRssBytes = peakReset ? readPeakRss(process.pid) : undefined;
  await settle();
  const after = collectedMemory();
  const found = present();
  const expected = expectedCounts(spec);
  for (const kind of Object.keys(expected) as GeneratedKind[])
    if (found[kind] !== expected[kind])
      throw new Error(`after sync the store has ${found[kind]} of ${expected[kind]} ${kind} objects`);
  tellParent({
    type: 'synced',
    firstBatchSeconds: firstBatchMs / 1000,
    syncSeconds: syncMs / 1000,
    cpuSeconds,
    peakRssBytes,
    before,
    after,
    present: found,
    rejections: store.allRejections().length,
    identitiesOnNode,
    batches,
  });
}

// ---- latency: the writer's clock in SENT_LABEL against this process's at the applied batch ----------

const latency = newHistogram();
let stopProfile: Promise<() => Promise<void>> = Promise.resolve(async () => undefined);
let stamped = 0;
let latencyBatches = 0;

function onApplied(_version: number, change: AppliedChange): void {
  const now = clockUs();
  latencyBatches += 1;
  for (const k of change.upserted) {
    const sent = store.get(k)?.labels[SENT_LABEL];
    if (sent === undefined || sent === SENT_UNSET) continue;
    latency.recordValue(Math.max(1, now - Number(sent)));
    stamped += 1;
  }
}

// ---- the relist: done once every marked update and every delete is visible -------------------------

function awaitRelist(
  marker: string,
  updated: readonly ObjectRef[],
  deleted: readonly ObjectRef[],
  timeoutMs: number,
): void {
  const startBatches = batches;
  const done = (): boolean =>
    updated.every((ref) => store.get(key(ref))?.labels[SENT_LABEL] === marker) &&
    deleted.every((ref) => store.get(key(ref)) === undefined);
  const finish = (): void => {
    clearTimeout(timer);
    store.off('applied', check);
    tellParent({ type: 'relist-done', doneAtUs: clockUs(), batches: batches - startBatches });
  };
  const check = (): void => {
    if (done()) finish();
  };
  const timer = setTimeout(() => {
    store.off('applied', check);
    const missing = updated.filter((ref) => store.get(key(ref))?.labels[SENT_LABEL] !== marker).length;
    const lingering = deleted.filter((ref) => store.get(key(ref)) !== undefined).length;
    tellParent({
      type: 'error',
      message: `relist not seen within ${timeoutMs} ms: ${missing} updates missing, ${lingering} deletes not applied`,
    });
  }, timeoutMs);
  store.on('applied', check);
  check();
}

process.on('message', (command: ConsumerCommand) => {
  switch (command.cmd) {
    case 'sample': {
      const cpu0 = sampleProcess(process.pid).cpuSeconds;
      const memory = collectedMemory();
      tellParent({ type: 'sample', memory, gcCpuSeconds: sampleProcess(process.pid).cpuSeconds - cpu0 });
      return;
    }
    case 'latency':
      // With WEFT_CPU_PROFILE_DIR set, the churn (and only it) is profiled: a diagnosis, whose overhead
      // the churn's figures then include.
      if (command.on) {
        latency.reset();
        stamped = 0;
        latencyBatches = 0;
        store.on('applied', onApplied);
        stopProfile = cpuProfileFromEnv(`kube-scale-churn-${spec.pods}`);
      } else {
        store.off('applied', onApplied);
        void stopProfile
          .then((stop) => stop())
          .then(() =>
            tellParent({
              type: 'latency',
              latencyUs: summarize(latency),
              count: stamped,
              batches: latencyBatches,
            }),
          );
      }
      return;
    case 'await-relist':
      awaitRelist(command.marker, command.updated, command.deleted, command.timeoutMs);
      return;
    case 'heap-snapshot':
      forceGc();
      tellParent({ type: 'heap-snapshot', path: writeHeapSnapshot(command.path) });
      return;
    case 'teardown':
      void (async () => {
        const withSource = collectedMemory();
        await source?.stop();
        source = undefined;
        // Let the source's last callbacks and sockets go before measuring.
        await settle();
        const storeOnly = collectedMemory();
        // The records without the store's indexes: the store is dropped (an empty one takes its place).
        const records = allRecords();
        store = new ConfigStore();
        const recordsOnly = collectedMemory();
        tellParent({ type: 'torn-down', withSource, storeOnly, recordsOnly, records: records.length });
      })();
      return;
    case 'exit':
      process.exit(0);
  }
});

await sync();
