// core/sources/file.ts against a real, watched folder: the sample manifests load, and edits, bad
// edits, syntax errors, renames and deletions reach the store as the right batches.
import t from 'tap';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatRejection } from '../../core/convert/index.js';
import { effectiveMtlsMode, isAmbientEnrolled, isWaypoint } from '../../core/model/index.js';
import { createConfigSource, FileSource } from '../../core/sources/index.js';
import { ConfigStore } from '../../core/store.js';
import { ManualClock } from '../helpers/clock.js';

/** The one thing these helpers need from a tap test. */
interface Teardowns {
  teardown(fn: () => unknown): void;
}

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'manifests');

/** A fresh copy of the sample manifests in a temp folder named `manifests`, removed after the test. */
function manifestDir(t: Teardowns, withFixtures = true): string {
  const parent = mkdtempSync(join(tmpdir(), 'weft-file-source-'));
  t.teardown(() => rmSync(parent, { recursive: true, force: true }));
  const dir = join(parent, 'manifests');
  if (withFixtures) cpSync(FIXTURES, dir, { recursive: true });
  else mkdirSync(dir);
  return dir;
}

async function started(t: Teardowns, dir: string): Promise<ConfigStore> {
  const store = new ConfigStore();
  const source = new FileSource(dir, { debounceMs: 20 });
  await source.start(store);
  t.teardown(() => source.stop());
  return store;
}

/** Runs `change` and resolves once the store has applied the batch it causes. */
async function afterChange(store: ConfigStore, change: () => void): Promise<void> {
  const next = store.whenVersion(store.version + 1);
  change();
  await next;
}

const POD = (name: string, ip: string) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: shop }
spec: { serviceAccountName: web, nodeName: node-1 }
status: { phase: Running, podIP: "${ip}" }
`;

t.test('the sample manifests load into one consistent version', async (t) => {
  const store = new ConfigStore();
  const source = createConfigSource(`file:${manifestDir(t)}`);
  await source.start(store);
  t.teardown(() => source.stop());

  t.equal(store.version, 1, 'the initial load is one batch');
  t.same(store.allRejections().map(formatRejection), [], 'the samples are valid');
  const productpage = store.workloadByIp('10.244.1.10');
  t.equal(productpage?.name, 'productpage-v1-7d4b8c');
  t.ok(isAmbientEnrolled(store.namespace('bookinfo'), productpage!), 'bookinfo is enrolled');
  t.same([...store.workloadsOnNode('node-2')].map((w) => w.name).sort(), [
    'ratings-v1-8f9a1b',
    'reviews-v2-6c8e0f',
  ]);
  t.ok(store.hasPodOnNode('bookinfo', 'bookinfo-reviews', 'node-1'));
  t.ok(store.hasPodOnNode('payments', 'ledger', 'node-1'), 'pods from a JSON List');
  t.equal(store.workloadByIp('10.244.2.21')?.phase, 'Running', 'no phase but an IP: Running');

  const reviews = store.serviceByHost('reviews.bookinfo.svc.cluster.local')!;
  t.same(
    store
      .endpointsOf(reviews)
      .map((e) => e.address)
      .sort(),
    ['10.244.1.11', '10.244.2.20'],
  );
  t.same(
    store.endpointsOf(store.serviceByVip('10.96.20.2')!).map((e) => e.address),
    ['192.168.50.10'],
    'EndpointSlice endpoints',
  );
  t.same(store.endpointsOf(store.serviceByVip('10.96.20.1')!)[0]?.targetPorts, { 7070: 7070 });

  const waypoint = store.gateway('bookinfo', 'waypoint');
  t.ok(waypoint !== undefined && isWaypoint(waypoint));
  t.equal(store.httpRoutes('bookinfo')[0]?.rules[1]?.timeouts.backendRequestMs, 2500);
  const ratings = store.workload('bookinfo', 'ratings-v1-8f9a1b')!;
  t.same(
    store.authorizationPoliciesFor(ratings).map((p) => p.name),
    ['deny-legacy', 'allow-waypoint', 'ratings-from-reviews'],
    'root DENY, namespace ALLOW, selector ALLOW; not the targetRefs one',
  );
  t.equal(effectiveMtlsMode(store.peerAuthenticationsFor(ratings), 9080), 'STRICT', 'mesh-wide STRICT');
  const ledger = store.workload('payments', 'ledger-0')!;
  t.equal(
    effectiveMtlsMode(store.peerAuthenticationsFor(ledger), 9090),
    'PERMISSIVE',
    'a port-level exception',
  );
  t.equal(
    store.get({ kind: 'Service', namespace: 'bookinfo', name: 'bookinfo-settings' }),
    undefined,
    'the ConfigMap is ignored',
  );
});

t.test(
  'an invalid object does not disturb valid ones, and an invalid edit keeps the last good version',
  async (t) => {
    const dir = manifestDir(t, false);
    writeFileSync(join(dir, 'shop.yaml'), [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'));
    const store = await started(t, dir);
    t.equal(store.workloadByIp('10.0.0.1')?.name, 'web-0');

    await afterChange(store, () =>
      writeFileSync(
        join(dir, 'shop.yaml'),
        [POD('web-0', '10.0.0.999'), POD('web-1', '10.0.0.3')].join('---\n'),
      ),
    );
    t.equal(
      store.workload('shop', 'web-0')?.podIps[0],
      '10.0.0.1',
      'web-0: the last good version keeps serving',
    );
    t.equal(
      store.workload('shop', 'web-1')?.podIps[0],
      '10.0.0.3',
      'web-1: its valid edit applied in the same batch',
    );
    t.same(store.allRejections().map(formatRejection), [
      'manifests/shop.yaml doc 1: Pod shop/web-0: status.podIP must be an IP address, got "10.0.0.999"',
    ]);

    await afterChange(store, () =>
      writeFileSync(
        join(dir, 'shop.yaml'),
        [POD('web-0', '10.0.0.4'), POD('web-1', '10.0.0.3')].join('---\n'),
      ),
    );
    t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.4', 'the fix applies');
    t.same(store.allRejections(), [], 'and clears the rejection');
  },
);

t.test('an edit that breaks an object metadata keeps the object; fixing it resumes', async (t) => {
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'shop.yaml'), [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'));
  const store = await started(t, dir);

  await afterChange(store, () =>
    writeFileSync(
      join(dir, 'shop.yaml'),
      [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2').replace(/^metadata: .*$/m, 'metadata: oops')].join(
        '---\n',
      ),
    ),
  );
  t.equal(store.workload('shop', 'web-1')?.podIps[0], '10.0.0.2', 'still served');
  t.same(store.allRejections().map(formatRejection), [
    'manifests/shop.yaml doc 2: Pod: metadata must be an object, got "oops"',
  ]);

  await afterChange(store, () => writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.1')));
  t.equal(store.workload('shop', 'web-1'), undefined, 'removing it once the file reads cleanly deletes it');
  t.same(store.allRejections(), []);
});

t.test('a YAML syntax error keeps the file objects; fixing it resumes', async (t) => {
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.1'));
  const store = await started(t, dir);

  await afterChange(store, () =>
    writeFileSync(join(dir, 'shop.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: { name: [web-0\n'),
  );
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.1', 'still served');
  const [rejection] = store.allRejections();
  t.match(rejection, { file: 'manifests/shop.yaml', document: 1 });
  t.match(formatRejection(rejection!), /^manifests\/shop\.yaml doc 1: YAML syntax error/);

  await afterChange(store, () => writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.2')));
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.2');
  t.same(store.allRejections(), []);
});

t.test('deleting a file deletes its objects; removing an object from a file deletes it', async (t) => {
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'a.yaml'), [POD('web-0', '10.0.0.1'), POD('web-1', '10.0.0.2')].join('---\n'));
  writeFileSync(join(dir, 'b.yml'), POD('db-0', '10.0.1.1'));
  const store = await started(t, dir);

  await afterChange(store, () => writeFileSync(join(dir, 'a.yaml'), POD('web-0', '10.0.0.1')));
  t.equal(store.workload('shop', 'web-1'), undefined, 'removed from its file');
  t.ok(store.workload('shop', 'web-0'));

  await afterChange(store, () => unlinkSync(join(dir, 'a.yaml')));
  t.equal(store.workload('shop', 'web-0'), undefined, 'its file was deleted');
  t.equal(store.workloadByIp('10.0.0.1'), undefined);
  t.ok(store.workload('shop', 'db-0'), 'other files are untouched');
});

t.test('editors that save by rename-replace, and new subfolders, are seen', async (t) => {
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.1'));
  const store = await started(t, dir);

  await afterChange(store, () => {
    writeFileSync(join(dir, '.shop.yaml.swp'), POD('web-0', '10.0.0.5'));
    renameSync(join(dir, '.shop.yaml.swp'), join(dir, 'shop.yaml'));
  });
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.5');

  await afterChange(store, () => {
    mkdirSync(join(dir, 'team'));
    writeFileSync(
      join(dir, 'team', 'db.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team' } }),
    );
  });
  t.ok(store.namespace('team'), 'a file in a new subfolder');
  await afterChange(store, () =>
    writeFileSync(
      join(dir, 'team', 'db.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team', labels: { a: 'b' } } }),
    ),
  );
  t.same(store.namespace('team')?.labels, { a: 'b' }, 'and its later edits');
});

t.test('the same object in two files: the later is rejected naming both', async (t) => {
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'b.yaml'), POD('web-0', '10.0.0.1'));
  const store = await started(t, dir);
  await afterChange(store, () => writeFileSync(join(dir, 'a.yaml'), POD('web-0', '10.0.0.2')));
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.1');
  t.same(store.allRejections().map(formatRejection), [
    'manifests/a.yaml doc 1: Pod shop/web-0: is also defined in manifests/b.yaml, whose definition is used; remove one of them',
  ]);
});

t.test('config source specs', async (t) => {
  t.equal(createConfigSource('file:/etc/weft').description, 'file:/etc/weft');
  t.throws(() => createConfigSource('file:'), /needs a folder/);
  t.equal(createConfigSource('kubernetes').description, 'kubernetes');
  t.throws(() => createConfigSource('kubernetes:'), /needs a kubeconfig file/);
  t.throws(() => createConfigSource('/etc/weft'), /expected file:DIR/);
  const missing = createConfigSource(`file:${join(tmpdir(), 'weft-does-not-exist')}`);
  await t.rejects(missing.start(new ConfigStore()), /cannot read the folder/);
});

/** A ManualClock that also says when a timer is set, i.e. when the source has seen a change. */
class WatchedClock extends ManualClock {
  /** Virtual times at which a timer's callback ran. */
  readonly fired: number[] = [];
  #onSchedule: (() => void)[] = [];

  override schedule(delayMs: number, fn: () => void): { cancel(): void } {
    const handle = super.schedule(delayMs, () => {
      this.fired.push(this.now());
      fn();
    });
    for (const resolve of this.#onSchedule.splice(0)) resolve();
    return handle;
  }

  /** Resolves at the next `schedule` call. */
  nextSchedule(): Promise<void> {
    return new Promise((resolve) => this.#onSchedule.push(resolve));
  }
}

type Readdir = typeof fsPromises.readdir;
type Stat = typeof fsPromises.stat;

/**
 * Records the source's directory reads and stats (through the builtin module's live ESM bindings, which
 * `syncBuiltinESMExports` updates), and can hold the next read of one directory until released.
 */
class FsSpy {
  /** Every readdir and stat, in order, as `readdir <path>` / `stat <path>`. */
  readonly calls: string[] = [];
  #held: { dir: string; started: () => void; release: Promise<void> } | undefined;

  constructor(t: Teardowns) {
    const { readdir, stat } = fsPromises;
    const spy = (name: string, path: unknown) => this.calls.push(`${name} ${String(path)}`);
    const spyReaddir = async (...args: Parameters<Readdir>) => {
      spy('readdir', args[0]);
      const held = this.#held;
      if (held !== undefined && String(args[0]) === held.dir) {
        this.#held = undefined;
        held.started();
        await held.release;
      }
      return readdir(...args);
    };
    const spyStat = (...args: Parameters<Stat>) => {
      spy('stat', args[0]);
      return stat(...args);
    };
    Object.assign(fsPromises, { readdir: spyReaddir, stat: spyStat });
    syncBuiltinESMExports();
    t.teardown(() => {
      Object.assign(fsPromises, { readdir, stat });
      syncBuiltinESMExports();
    });
  }

  /** Holds the next readdir of `dir`; `started` resolves when it is called, `release()` lets it run. */
  hold(dir: string): { started: Promise<void>; release: () => void } {
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started = (): void => undefined;
    const called = new Promise<void>((resolve) => (started = resolve));
    this.#held = { dir, started, release: released };
    return { started: called, release };
  }

  count(call: string): number {
    return this.calls.filter((c) => c === call).length;
  }
}

t.test('symlink loops and second links to a folder are walked once', async (t) => {
  const spy = new FsSpy(t);
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.1'));
  mkdirSync(join(dir, 'team'));
  writeFileSync(join(dir, 'team', 'db.yaml'), POD('db-0', '10.0.1.1'));
  symlinkSync('.', join(dir, 'loop'), 'dir');
  symlinkSync('.', join(dir, 'loop-too'), 'dir');
  symlinkSync('team', join(dir, 'alias'), 'dir');

  const applied: number[] = [];
  const store = new ConfigStore();
  store.on('applied', (_version, change) => applied.push(change.upserted.length));
  const source = new FileSource(dir, { debounceMs: 20 });
  await source.start(store);
  t.teardown(() => source.stop());

  t.same(store.allRejections().map(formatRejection), [], 'no object is defined twice');
  t.same(applied, [2], 'each object once');
  t.ok(store.workload('shop', 'web-0'));
  t.ok(store.workload('shop', 'db-0'), 'from the first path that reaches it');
  t.equal(spy.calls.filter((call) => call.startsWith('readdir ')).length, 2, 'two directories, two reads');
});

t.test('no rescan starts once stop() has been called', async (t) => {
  const spy = new FsSpy(t);
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.1'));
  const clock = new WatchedClock();
  const store = new ConfigStore();
  const source = new FileSource(dir, { debounceMs: 20, clock });
  await source.start(store);
  t.teardown(() => source.stop());

  // A rescan that is held in its directory read.
  const held = spy.hold(dir);
  let seen = clock.nextSchedule();
  writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.2'));
  await seen;
  clock.advance(20);
  await held.started;

  // A change during it, whose rescan has to wait for the running one.
  seen = clock.nextSchedule();
  writeFileSync(join(dir, 'other.yaml'), POD('web-1', '10.0.0.3'));
  await seen;
  clock.advance(20);

  const stopping = source.stop();
  const callsAtStop = spy.calls.length;
  held.release();
  await stopping;
  t.same(
    spy.calls.slice(callsAtStop).filter((call) => call === `readdir ${dir}` || call === `stat ${dir}`),
    [],
    'the held rescan finished; no second one started',
  );
  t.equal(store.version, 1, 'and nothing was applied after stop()');
});

t.test('a folder written to without a pause is still rescanned after maxWaitMs', async (t) => {
  const dir = manifestDir(t, false);
  writeFileSync(join(dir, 'shop.yaml'), POD('web-0', '10.0.0.1'));
  const clock = new WatchedClock(0);
  const store = new ConfigStore();
  const source = new FileSource(dir, { debounceMs: 100, maxWaitMs: 1000, clock });
  await source.start(store);
  t.teardown(() => source.stop());

  // A write every 50 ms for 1 s: never the 100 ms of quiet the debounce waits for.
  for (let i = 2; i <= 21; i++) {
    const seen = clock.nextSchedule();
    writeFileSync(join(dir, 'shop.yaml'), POD('web-0', `10.0.0.${i}`));
    await seen;
    clock.advance(50);
  }
  t.same(clock.fired, [1000], 'one rescan, at the maximum wait');

  clock.advance(100); // (so that a failing run ends too)
  await store.whenVersion(2);
  t.equal(store.workload('shop', 'web-0')?.podIps[0], '10.0.0.21', 'it read the file as it then was');
});
