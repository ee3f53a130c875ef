// The API server's process of `weft bench kube-scale`: the test double (test/helpers/kube-api-server.ts)
// holding the generated set, created directly (no HTTP), then changed on command: a bounded churn at a
// fixed write rate, and a relist forced by cutting the watches and compacting history (410 Gone).
// Its own memory and CPU are not measured; it runs apart so that they do not count as the consumer's.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeApiServer, type KubeObject } from '../../test/helpers/kube-api-server.js';
import {
  initialObjects,
  initialPodState,
  namespaceOfService,
  podName,
  podObject,
  SENT_LABEL,
  serviceName,
  serviceOfSlot,
  sliceEndpoint,
  sliceName,
  type PodState,
  type ScaleSpec,
} from './objects.js';
import {
  clockUs,
  reportFailures,
  tellParent,
  type ApiChildOptions,
  type ApiCommand,
  type ChurnCounts,
  type ObjectRef,
} from './protocol.js';
import { seededRandom } from '../../proxy/routing/random.js';

/** Objects per manifest file: a few tens of MiB each, far below V8's string limit. */
const FILE_ITEMS = 5000;
/** How often the churn loop wakes to catch up with its schedule. */
const CHURN_TICK_MS = 10;

reportFailures();
const options = JSON.parse(process.argv[2] ?? '{}') as ApiChildOptions;
const spec: ScaleSpec = options.spec;
// Enough history for any watch that merely reconnects during the churn; the relist compacts it.
const server = new KubeApiServer({ historyLimit: 10_000 });
/** Each pod slot's current pod. */
const pods: PodState[] = [];
/** Slots whose pod a relist deleted (not replaced): the churn and later relists leave them alone. */
const gone = new Set<number>();
/** Services (with their slices) a relist deleted. */
const goneServices = new Set<number>();
let nextIpIndex = spec.pods;

/** Writes the set as `kind: List` JSON files, FILE_ITEMS objects each, as objects stream past. */
class ManifestWriter {
  readonly dir: string;
  #fd: number | undefined;
  #items = 0;
  #files = 0;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  add(kind: string, json: string): void {
    if (this.#fd === undefined || this.#items >= FILE_ITEMS) {
      this.close();
      this.#files += 1;
      const name = `${String(this.#files).padStart(4, '0')}-${kind.toLowerCase()}.json`;
      this.#fd = openSync(join(this.dir, name), 'w');
      writeSync(this.#fd, '{"apiVersion":"v1","kind":"List","items":[\n');
      this.#items = 0;
    }
    writeSync(this.#fd, `${this.#items === 0 ? '' : ',\n'}${json}`);
    this.#items += 1;
  }

  close(): void {
    if (this.#fd === undefined) return;
    writeSync(this.#fd, '\n]}\n');
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}

async function load(): Promise<void> {
  const started = performance.now();
  const writer = options.writeFiles ? new ManifestWriter(join(options.dir, 'manifests')) : undefined;
  const jsonBytes: Record<string, number> = {};
  let objects = 0;
  let lastKind = '';
  for (const object of initialObjects(spec)) {
    // One file never mixes kinds, so a kind's first file starts fresh.
    if (object.kind !== lastKind) writer?.close();
    lastKind = object.kind;
    const stored = server.create(object);
    // What the API server sends: the stored object (with resourceVersion) without kind and apiVersion.
    const { kind: _kind, apiVersion: _apiVersion, ...item } = stored;
    const json = JSON.stringify(item);
    jsonBytes[object.kind] = (jsonBytes[object.kind] ?? 0) + Buffer.byteLength(json);
    writer?.add(object.kind, JSON.stringify(stored));
    objects += 1;
  }
  writer?.close();
  for (let slot = 0; slot < spec.pods; slot += 1) pods.push(initialPodState(slot));
  await server.listen();
  tellParent({
    type: 'ready',
    kubeconfig: server.writeKubeconfig(options.dir),
    manifestsDir: writer?.dir,
    createSeconds: (performance.now() - started) / 1000,
    jsonBytes,
    objects,
  });
}

function fetch(kind: string, namespace: string, name: string): KubeObject {
  const object = server.get(kind, namespace, name);
  if (object === undefined) throw new Error(`kube-scale: ${kind} ${namespace}/${name} is missing`);
  return object;
}

function labels(object: KubeObject): Record<string, string> {
  return (object.metadata.labels ??= {}) as Record<string, string>;
}

interface PodFields {
  status: {
    conditions: { type: string; lastTransitionTime: string }[];
    containerStatuses: { restartCount: number }[];
  };
  metadata: { managedFields: { time: string }[] };
}

/** A kubelet status update (a restart, readiness re-established), stamped. */
function updatePod(slot: number, stamp: string): void {
  const state = pods[slot] as PodState;
  const service = serviceOfSlot(spec, slot);
  const pod = fetch('Pod', namespaceOfService(spec, service), podName(spec, slot, state.generation));
  const fields = pod as unknown as PodFields;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const ready = fields.status.conditions.find((c) => c.type === 'Ready');
  if (ready !== undefined) ready.lastTransitionTime = now;
  const container = fields.status.containerStatuses[0];
  if (container !== undefined) container.restartCount += 1;
  const kubelet = fields.metadata.managedFields[1];
  if (kubelet !== undefined) kubelet.time = now;
  labels(pod)[SENT_LABEL] = stamp;
  server.update(pod);
}

interface SliceFields {
  endpoints: {
    addresses: string[];
    conditions: { ready: boolean; serving: boolean };
    targetRef: { name: string };
  }[];
}

function fetchSlice(service: number): KubeObject {
  return fetch('EndpointSlice', namespaceOfService(spec, service), sliceName(spec, service));
}

/** The pod is deleted, its replacement (next generation, new address, maybe another node) created, and
 *  the slice's endpoint swapped: what a rollout or an eviction does. */
function replacePod(slot: number, stamp: string): void {
  const old = pods[slot] as PodState;
  const service = serviceOfSlot(spec, slot);
  const namespace = namespaceOfService(spec, service);
  const oldName = podName(spec, slot, old.generation);
  server.delete('Pod', namespace, oldName);
  const next: PodState = {
    slot,
    generation: old.generation + 1,
    ipIndex: nextIpIndex,
    createdMs: Date.now(),
  };
  nextIpIndex += 1;
  pods[slot] = next;
  const pod = podObject(spec, next);
  labels(pod)[SENT_LABEL] = stamp;
  server.create(pod);
  if (goneServices.has(service)) return;
  const slice = fetchSlice(service);
  const endpoints = (slice as unknown as SliceFields).endpoints;
  const at = endpoints.findIndex((endpoint) => endpoint.targetRef.name === oldName);
  const endpoint = sliceEndpoint(spec, next) as unknown as SliceFields['endpoints'][number];
  if (at >= 0) endpoints[at] = endpoint;
  else endpoints.push(endpoint);
  labels(slice)[SENT_LABEL] = stamp;
  server.update(slice);
}

/** An endpoint goes unready, or ready again. */
function flipEndpoint(service: number, pick: number, stamp: string): void {
  const slice = fetchSlice(service);
  const endpoints = (slice as unknown as SliceFields).endpoints;
  const endpoint = endpoints[pick % Math.max(1, endpoints.length)];
  if (endpoint !== undefined) {
    endpoint.conditions.ready = !endpoint.conditions.ready;
    endpoint.conditions.serving = endpoint.conditions.ready;
  }
  labels(slice)[SENT_LABEL] = stamp;
  server.update(slice);
}

function relabelService(service: number, stamp: string): void {
  const object = fetch('Service', namespaceOfService(spec, service), serviceName(service));
  labels(object)[SENT_LABEL] = stamp;
  server.update(object);
}

/**
 * `rate` writes a second for `seconds`, on schedule (a late tick catches up). Of the operations: 80 %
 * pod status updates, 10 % pod replacements (3 writes), 8 % slice readiness flips, 2 % Service label
 * changes. Every written object carries the writer's clock in SENT_LABEL, except the deletes.
 */
async function churn(seconds: number, rate: number, seed: number): Promise<void> {
  if (gone.size >= spec.pods || goneServices.size >= spec.services)
    throw new Error('kube-scale: relists deleted every pod or Service; nothing left to churn');
  const random = seededRandom(seed);
  const counts = { podUpdates: 0, podReplacements: 0, sliceUpdates: 0, serviceUpdates: 0 };
  const start = performance.now();
  const end = start + seconds * 1000;
  let writes = 0;
  let stamped = 0;
  for (;;) {
    const now = performance.now();
    if (now >= end) break;
    const due = Math.floor(((now - start) / 1000) * rate);
    while (writes < due) {
      const stamp = String(clockUs());
      const op = random();
      let slot = Math.floor(random() * spec.pods);
      while (gone.has(slot)) slot = (slot + 1) % spec.pods;
      let service = Math.floor(random() * spec.services);
      while (goneServices.has(service)) service = (service + 1) % spec.services;
      if (op < 0.8) {
        updatePod(slot, stamp);
        counts.podUpdates += 1;
        writes += 1;
        stamped += 1;
      } else if (op < 0.9) {
        replacePod(slot, stamp);
        counts.podReplacements += 1;
        writes += 3;
        stamped += 2;
      } else if (op < 0.98) {
        flipEndpoint(service, slot, stamp);
        counts.sliceUpdates += 1;
        writes += 1;
        stamped += 1;
      } else {
        relabelService(service, stamp);
        counts.serviceUpdates += 1;
        writes += 1;
        stamped += 1;
      }
    }
    await sleep(Math.max(0, Math.min(CHURN_TICK_MS, end - performance.now())));
  }
  const result: ChurnCounts = counts;
  tellParent({
    type: 'churned',
    seconds: (performance.now() - start) / 1000,
    writes,
    stamped,
    counts: result,
  });
}

/**
 * Cuts every watch (as an API server restart or a load balancer does), changes objects while none is
 * open, and compacts history, all in one tick: the informers' resumed watches get 410 Gone and relist.
 * Changed: `updates` pods (stamped with a marker), `deletes` pods, and one Service with its slice.
 */
function relist(updates: number, deletes: number): void {
  const droppedAtUs = clockUs();
  server.dropWatches({ graceful: true });
  const marker = String(droppedAtUs);
  const updated: ObjectRef[] = [];
  const deleted: ObjectRef[] = [];
  const step = Math.max(1, Math.floor(spec.pods / Math.max(1, updates + deletes)));
  for (let i = 0, slot = spec.pods - 1; i < updates + deletes && slot >= 0; slot -= step) {
    if (gone.has(slot)) continue;
    const state = pods[slot] as PodState;
    const namespace = namespaceOfService(spec, serviceOfSlot(spec, slot));
    const name = podName(spec, slot, state.generation);
    if (i < updates) {
      updatePod(slot, marker);
      updated.push({ kind: 'Pod', namespace, name });
    } else {
      server.delete('Pod', namespace, name);
      gone.add(slot);
      deleted.push({ kind: 'Pod', namespace, name });
    }
    i += 1;
  }
  // The last Service still there (and its slice; with one Service, only the slice).
  for (let service = spec.services - 1; service >= 0; service -= 1) {
    const namespace = namespaceOfService(spec, service);
    const slice = sliceName(spec, service);
    if (goneServices.has(service)) continue;
    goneServices.add(service);
    server.delete('EndpointSlice', namespace, slice);
    deleted.push({ kind: 'EndpointSlice', namespace, name: slice });
    if (spec.services > 1) {
      server.delete('Service', namespace, serviceName(service));
      deleted.push({ kind: 'Service', namespace, name: serviceName(service) });
    }
    break;
  }
  server.compact();
  tellParent({ type: 'relisted', droppedAtUs, marker, updated, deleted });
}

process.on('message', (command: ApiCommand) => {
  if (command.cmd === 'churn') void churn(command.seconds, command.rate, command.seed);
  else if (command.cmd === 'relist') relist(command.updates, command.deletes);
  else if (command.cmd === 'exit') void server.close().finally(() => process.exit(0));
});

await load();
