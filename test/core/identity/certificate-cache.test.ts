// The on-node certificate cache: round trip, modes, rejection of tampered entries, a restarted manager
// serving from it while the CA is unreachable and resuming rotation, and OpenSSL's view of what it stores.
import t, { type Test } from 'tap';
import {
  chownSync,
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import type { Logger } from '../../../core/log.js';
import { exportPkcs8Pem, parseCertificates } from '../../../core/x509.js';
import { createWorkloadCsr } from '../../../core/identity/csr.js';
import { GrpcCaClient, type CaClient } from '../../../core/identity/ca-client.js';
import {
  CertificateCache,
  cacheFileName,
  RESTORE_EXPIRY_MARGIN_MS,
} from '../../../core/identity/certificate-cache.js';
import { CertificateManager, type WorkloadCertificate } from '../../../core/identity/manager.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../../../ca/node-tokens.js';
import { ManualClock } from '../../helpers/clock.js';
import { LocalCaClient } from '../../helpers/local-ca-client.js';
import { removeDir, startTestCa, StaticPlacement } from '../../helpers/ca.js';
import { run, skipReason } from '../../helpers/exec.js';
import { writeTempFiles } from '../../helpers/openssl.js';

const TD = 'cluster.local';
const id = (sa: string, td = TD) => `spiffe://${td}/ns/default/sa/${sa}`;

interface LogLine {
  level: number;
  msg: string;
  identity?: string;
  reason?: string;
  [field: string]: unknown;
}
const WARN = 40;

function capturingLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines };
}

/** A cache directory path under a fresh temp folder (not created: the cache creates it). */
function freshDir(t: Test): string {
  const base = mkdtempSync(join(tmpdir(), 'weft-certcache-'));
  t.teardown(() => removeDir(base));
  return join(base, 'certs');
}

/**
 * A certificate signed by the real CA code at `atMs`, taken as the CA answered it: no manager checks,
 * so expired and foreign-domain certificates can be made too.
 */
async function issue(
  ca: LocalCaClient,
  spiffeId: string,
  opts: { atMs?: number; ttlSeconds?: number } = {},
): Promise<WorkloadCertificate> {
  const { csrPem, keys } = await createWorkloadCsr(spiffeId);
  const before = ca.now;
  ca.now = () => new Date(opts.atMs ?? Date.now());
  let chain: string[];
  try {
    chain = await ca.createCertificate(csrPem, spiffeId, opts.ttlSeconds ?? 3600);
  } finally {
    ca.now = before;
  }
  const [leaf] = parseCertificates(chain[0]!);
  return {
    spiffeId,
    privateKeyPem: await exportPkcs8Pem(keys.privateKey),
    certChainPem: chain.slice(0, -1).join(''),
    rootsPem: chain.at(-1)!,
    serialNumber: leaf!.serialNumber,
    notBefore: leaf!.notBefore,
    notAfter: leaf!.notAfter,
  };
}

function same(t: Test, got: WorkloadCertificate | undefined, want: WorkloadCertificate, what: string) {
  t.ok(got, `${what}: loaded`);
  if (!got) return;
  t.equal(got.spiffeId, want.spiffeId, `${what}: identity`);
  t.equal(got.serialNumber, want.serialNumber, `${what}: serial`);
  t.equal(got.privateKeyPem, want.privateKeyPem, `${what}: key`);
  t.equal(got.certChainPem, want.certChainPem, `${what}: chain`);
  t.equal(got.rootsPem, want.rootsPem, `${what}: roots`);
  t.equal(got.notAfter.getTime(), want.notAfter.getTime(), `${what}: notAfter`);
}

const mode = (path: string) => statSync(path).mode & 0o777;

/** The serial of the leaf a cache file holds. */
function cachedSerial(dir: string, spiffeId: string): string {
  const entry = JSON.parse(readFileSync(join(dir, cacheFileName(spiffeId)), 'utf8')) as {
    certChainPem: string;
  };
  return parseCertificates(entry.certChainPem)[0]!.serialNumber;
}

/** Resolves with the next certificate issued for `spiffeId`. */
function issuedFor(manager: CertificateManager, spiffeId: string): Promise<WorkloadCertificate> {
  return new Promise((resolve) => {
    const on = (got: string, cert: WorkloadCertificate) => {
      if (got !== spiffeId) return;
      manager.off('certificate', on);
      resolve(cert);
    };
    manager.on('certificate', on);
  });
}

/** Resolves with the errors of the next `n` failed fetches. */
function failures(manager: CertificateManager, n: number): Promise<Error[]> {
  const errors: Error[] = [];
  return new Promise((resolve) => {
    const on = (_id: string, err: Error) => {
      errors.push(err);
      if (errors.length < n) return;
      manager.off('fetch-failed', on);
      resolve(errors);
    };
    manager.on('fetch-failed', on);
  });
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Counts calls and passes them to `target`, which the test swaps to bring the CA back. */
class SwitchableCa implements CaClient {
  calls = 0;
  constructor(public target: CaClient) {}
  createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number): Promise<string[]> {
    this.calls++;
    return this.target.createCertificate(csrPem, spiffeId, ttlSeconds);
  }
  close(): void {}
}

t.test('save then load: the same certificate, mode 0600 in a 0700 directory, named by a hash', async (t) => {
  const ca = await LocalCaClient.create();
  const dir = freshDir(t);
  const { log } = capturingLog();
  const cache = CertificateCache.open({ dir, log });
  t.equal(mode(dir), 0o700, 'the directory is created 0700');
  const web = await issue(ca, id('web'));
  const db = await issue(ca, id('db'));
  cache.save(web);
  cache.save(db);
  const files = readdirSync(dir).sort();
  t.same(files, [cacheFileName(id('web')), cacheFileName(id('db'))].sort(), 'one file per identity');
  for (const f of files) {
    t.match(f, /^[0-9a-f]{64}\.json$/, 'named by the SHA-256 of the identity');
    t.equal(mode(join(dir, f)), 0o600, `${f} is 0600`);
  }
  t.notOk(files.join().includes('web'), 'no workload name in the listing');

  const loaded = await CertificateCache.open({ dir, log }).load(TD);
  t.equal(loaded.length, 2);
  same(
    t,
    loaded.find((c) => c.spiffeId === id('web')),
    web,
    'web',
  );
  same(
    t,
    loaded.find((c) => c.spiffeId === id('db')),
    db,
    'db',
  );

  // A newer certificate replaces the entry; remove deletes it.
  const web2 = await issue(ca, id('web'));
  cache.save(web2);
  t.equal(cachedSerial(dir, id('web')), web2.serialNumber, 'save replaces');
  cache.remove(id('web'));
  cache.remove(id('web'));
  t.same(readdirSync(dir), [cacheFileName(id('db'))], 'remove deletes (and tolerates a second call)');
});

t.test(
  'the directory: an open one is closed to 0700 with a warning; another uid or a file is refused',
  async (t) => {
    const { log, lines } = capturingLog();
    const open = freshDir(t);
    mkdirSync(open);
    chmodSync(open, 0o755);
    CertificateCache.open({ dir: open, log });
    t.equal(mode(open), 0o700, 'chmod 700');
    t.match(
      lines.find((l) => /open to group or others/.test(l.msg)),
      { level: WARN, dir: open, mode: '755' },
      'warned, naming the directory and its mode',
    );

    const notDir = freshDir(t) + '-file';
    writeFileSync(notDir, 'x');
    t.throws(() => CertificateCache.open({ dir: notDir, log }), /is not a directory|cannot create/);

    let foreign: string;
    if (process.getuid?.() === 0) {
      foreign = freshDir(t);
      mkdirSync(foreign, { mode: 0o755 });
      chmodSync(foreign, 0o755);
      chownSync(foreign, 65534, 65534);
    } else {
      foreign = '/'; // root's; this process cannot chmod it either way
    }
    t.throws(
      () => CertificateCache.open({ dir: foreign, log }),
      { code: 'ERR_CONFIG_INVALID', message: /is owned by uid \d+, not this process's uid/ },
      'refused',
    );
    if (foreign !== '/') t.equal(mode(foreign), 0o755, 'a directory of another uid is not touched');
  },
);

t.test('tampered entries are rejected, deleted and logged; the good ones load', async (t) => {
  const ca = await LocalCaClient.create();
  const otherCa = await LocalCaClient.create();
  const dir = freshDir(t);
  const { log, lines } = capturingLog();
  const cache = CertificateCache.open({ dir, log });
  const web = await issue(ca, id('web'));
  const db = await issue(ca, id('db'));
  cache.save(web);
  cache.save(db);

  const bad: Record<string, RegExp> = {};
  // The key of another identity beside the right chain.
  cache.save({ ...(await issue(ca, id('keyswap'))), privateKeyPem: db.privateKeyPem });
  bad[id('keyswap')] = /leaf does not carry the public half of our private key/;
  // A chain issued for another identity, filed under this one.
  cache.save({ ...web, spiffeId: id('impostor') });
  bad[id('impostor')] = /leaf names \[spiffe:\/\/cluster.local\/ns\/default\/sa\/web\]/;
  // Expired an hour ago.
  cache.save(await issue(ca, id('expired'), { atMs: Date.now() - 2 * 3600_000, ttlSeconds: 3600 }));
  bad[id('expired')] = /leaf expired at/;
  // Valid for 30 s more: inside the margin.
  const almost = Date.now() - 3600_000 + 30_000;
  cache.save(await issue(ca, id('almost'), { atMs: almost, ttlSeconds: 3600 }));
  bad[id('almost')] = new RegExp(`within ${RESTORE_EXPIRY_MARGIN_MS / 1000} s`);
  // Signed by another CA, stored with this CA's roots.
  cache.save({ ...(await issue(otherCa, id('foreign'))), rootsPem: ca.authority.rootsPem });
  bad[id('foreign')] = /chain does not verify up to the root bundle/;
  // Another trust domain.
  cache.save(await issue(ca, id('web', 'other.org')));
  bad[id('web', 'other.org')] = /outside trust domain cluster.local/;
  // A good entry copied under another identity's name.
  copyFileSync(join(dir, cacheFileName(id('web'))), join(dir, cacheFileName(id('renamed'))));
  bad[id('web')] = /file name is not the hash/;
  // A good entry whose file others may read.
  cache.save(await issue(ca, id('loose')));
  chmodSync(join(dir, cacheFileName(id('loose'))), 0o644);
  bad[id('loose')] = /file mode 644/;
  // Not JSON at all.
  writeFileSync(join(dir, cacheFileName(id('garbage'))), '{"version": 1, "spiffeId": "spiff', {
    mode: 0o600,
  });
  // Half a write from a killed agent, and a file that is not the cache's.
  writeFileSync(join(dir, `.${cacheFileName(id('web'))}.tmp-0123456789abcdef`), '{"ver', { mode: 0o600 });
  writeFileSync(join(dir, 'README'), 'not ours', { mode: 0o600 });

  const loaded = await cache.load(TD);
  t.same(loaded.map((c) => c.spiffeId).sort(), [id('db'), id('web')], 'only the good entries load');
  same(
    t,
    loaded.find((c) => c.spiffeId === id('web')),
    web,
    'web',
  );
  t.same(
    readdirSync(dir).sort(),
    ['README', cacheFileName(id('db')), cacheFileName(id('web'))].sort(),
    'rejected entries and the interrupted write are deleted; a foreign file is left alone',
  );
  const rejections = lines.filter((l) => l.msg === 'cached certificate rejected and deleted');
  t.equal(rejections.length, 9, 'each rejection logged once');
  for (const l of rejections) t.equal(l.level, WARN);
  for (const [identity, reason] of Object.entries(bad))
    t.ok(
      rejections.some((l) => l.identity === identity && reason.test(l.reason ?? '')),
      `${identity}: logged with the reason ${reason}`,
    );
  t.ok(
    rejections.some((l) => l.identity === undefined && /not JSON/.test(l.reason ?? '')),
    'garbage: logged as not JSON',
  );
  t.ok(lines.some((l) => l.level === WARN && /not an entry; left alone/.test(l.msg)));

  const again = await cache.load(TD);
  t.equal(again.length, 2, 'a second load finds the same good entries and nothing to reject');
});

t.test('with the configured mesh roots, a cache from another root is rejected', async (t) => {
  const ca = await LocalCaClient.create();
  const oldCa = await LocalCaClient.create();
  const dir = freshDir(t);
  const { log, lines } = capturingLog();
  const cache = CertificateCache.open({ dir, log });
  cache.save(await issue(ca, id('web')));
  cache.save(await issue(oldCa, id('db')));
  t.equal((await cache.load(TD)).length, 2, 'each chain verifies up to its own stored roots');
  const loaded = await cache.load(TD, ca.authority.rootsPem);
  t.same(
    loaded.map((c) => c.spiffeId),
    [id('web')],
    'only the entry under the configured root',
  );
  t.match(lines.at(-1), { identity: id('db'), reason: /configured mesh roots/ });
  t.same(readdirSync(dir), [cacheFileName(id('web'))]);
  await t.rejects(cache.load(TD, 'no certificates here'), /trust bundle .* is empty/);
});

t.test(
  'a restarted manager serves cached certificates with the CA unreachable, then renews through it',
  async (t) => {
    const clock = new ManualClock();
    const ca = await LocalCaClient.create();
    ca.now = () => new Date(clock.now());
    const dir = freshDir(t);
    const { log, lines } = capturingLog();
    const common = { trustDomain: TD, ttlSeconds: 3600, log, clock, random: () => 0.5 };

    // First life: issue through the CA, each saved.
    const first = new CertificateManager({
      ...common,
      caClient: ca,
      cache: CertificateCache.open({ dir, log, clock }),
    });
    const [web1, db1] = await Promise.all([first.fetch(id('web')), first.fetch(id('db'))]);
    first.close();
    t.equal(cachedSerial(dir, id('web')), web1.serialNumber, 'issuance saved');
    t.equal(readdirSync(dir).length, 2, 'close keeps the cache');

    // Second life: the CA's port is closed.
    const files = writeTempFiles({ 'root.pem': ca.authority.rootsPem, token: 'test-token' });
    t.teardown(() => removeDir(files.dir));
    const unreachable = new GrpcCaClient({
      address: { host: '127.0.0.1', port: await closedPort() },
      rootCertFile: files.paths['root.pem']!,
      tokenFile: files.paths.token!,
      serverName: 'localhost',
      timeoutMs: 2000,
    });
    t.teardown(() => unreachable.close());
    const caClient = new SwitchableCa(unreachable);
    const second = new CertificateManager({
      ...common,
      caClient,
      cache: CertificateCache.open({ dir, log, clock }),
    });
    t.teardown(() => second.close());
    let issuedEvents = 0;
    second.on('certificate', () => issuedEvents++);
    const started = performance.now();
    const restored = await second.restore(ca.authority.rootsPem);
    const served = await second.fetch(id('web'));
    const elapsed = performance.now() - started;
    t.same(restored.sort(), [id('db'), id('web')], 'both identities restored');
    t.ok(elapsed < 1000, `restored and served in ${elapsed.toFixed(0)} ms`);
    t.equal(served.serialNumber, web1.serialNumber, 'the cached certificate serves');
    t.equal(served.privateKeyPem, web1.privateKeyPem, 'with its key');
    t.equal((await second.fetch(id('db'))).serialNumber, db1.serialNumber);
    t.equal(caClient.calls, 0, 'the CA was not asked');
    t.match(
      lines.find((l) => l.msg === 'certificates restored from node cache'),
      { dir, restored: 2 },
    );
    const health = second.health();
    t.equal(health.length, 2);
    t.match(health[0], {
      spiffeId: id('db'),
      held: { serialNumber: db1.serialNumber },
      consecutiveFailures: 0,
    });
    t.match(health[1], {
      spiffeId: id('web'),
      held: { serialNumber: web1.serialNumber },
      consecutiveFailures: 0,
    });
    const status = second.status();
    t.match(status[0], { spiffeId: id('db'), state: 'available', serialNumber: db1.serialNumber });
    t.match(status[1], { spiffeId: id('web'), state: 'available', serialNumber: web1.serialNumber });
    t.equal(issuedEvents, 0, 'a restore is not an issuance (no `certificate` event: no CSR success counted)');

    // Rotation resumes at the usual half-life.
    const half = web1.notBefore.getTime() + (web1.notAfter.getTime() - web1.notBefore.getTime()) / 2;
    const delays = clock.pendingDelays();
    t.equal(delays.length, 2, 'a renewal timer per identity');
    t.ok(Math.abs(delays[0]! - (half - clock.now())) < 1000, 'renewal armed at half-life');

    // At half-life the CA is still away: both renewals fail, the cached certificates keep serving.
    const failed = failures(second, 2);
    clock.advance(delays[1]!);
    const errors = await failed;
    for (const e of errors)
      t.match(e.message, /UNAVAILABLE|ECONNREFUSED|No connection/i, `the CA is unreachable: ${e.message}`);
    t.equal(caClient.calls, 2, 'one renewal CSR per identity');
    t.equal((await second.fetch(id('web'))).serialNumber, web1.serialNumber, 'still serving the cached one');
    t.same(clock.pendingDelays(), [500, 500], 'retries on the backoff schedule');

    // The CA is back: the retries renew and the cache holds the new certificates.
    caClient.target = ca;
    const renewed = Promise.all([issuedFor(second, id('web')), issuedFor(second, id('db'))]);
    clock.advance(500);
    const [web2, db2] = await renewed;
    t.not(web2.serialNumber, web1.serialNumber, 'web renewed');
    t.equal(cachedSerial(dir, id('web')), web2.serialNumber, 'the cache file holds the new serial');
    t.equal(cachedSerial(dir, id('db')), db2.serialNumber);
    t.equal((await second.fetch(id('web'))).serialNumber, web2.serialNumber, 'the new one serves');
  },
);

t.test('certificates restored past their half-life renew soon, at Background priority', async (t) => {
  const ca = await LocalCaClient.create();
  const dir = freshDir(t);
  const { log } = capturingLog();
  const issuedAt = Date.now();
  const web = await issue(ca, id('web'), { atMs: issuedAt, ttlSeconds: 3600 });
  const db = await issue(ca, id('db'), { atMs: issuedAt, ttlSeconds: 3600 });
  const seed = CertificateCache.open({ dir, log });
  seed.save(web);
  seed.save(db);

  const callsBefore = ca.calls.length;
  const lifetime = web.notAfter.getTime() - web.notBefore.getTime();
  const clock = new ManualClock(web.notBefore.getTime() + lifetime * 0.75);
  ca.now = () => new Date(clock.now());
  const manager = new CertificateManager({
    caClient: ca,
    trustDomain: TD,
    ttlSeconds: 3600,
    log,
    clock,
    maxConcurrentCsrs: 1,
    cache: CertificateCache.open({ dir, log, clock }),
  });
  t.teardown(() => manager.close());
  t.same((await manager.restore()).sort(), [id('db'), id('web')]);
  t.equal((await manager.fetch(id('web'))).serialNumber, web.serialNumber, 'serves at once');
  t.same(clock.pendingDelays(), [0, 0], 'renewals due now, not at a half-life already passed');
  t.equal(ca.calls.length, callsBefore, 'no CSR inside restore: the start goes on');

  // One CSR at a time: the first renewal is held at the CA, the second waits in the queue.
  ca.hold = true;
  const renewed = Promise.all([
    issuedFor(manager, id('web')),
    issuedFor(manager, id('db')),
    issuedFor(manager, id('api')),
  ]);
  clock.advance(0);
  await ca.waitForCalls(callsBefore + 1);
  const [firstRenewed] = ca.calls.slice(callsBefore);
  const secondRenewal = firstRenewed === id('web') ? id('db') : id('web');
  // A new pod's identity is prefetched at Warmup: it goes before the queued renewal, which is Background.
  manager.setWanted([id('web'), id('db'), id('api')]);
  ca.hold = false;
  ca.releaseOne();
  const [webNew, dbNew] = await renewed;
  t.same(ca.calls.slice(callsBefore), [firstRenewed, id('api'), secondRenewal], 'Warmup before the renewal');
  t.equal(cachedSerial(dir, id('web')), webNew.serialNumber, 'saved');
  t.equal(cachedSerial(dir, id('db')), dbNew.serialNumber, 'saved');
});

t.test(
  'setWanted un-caches dropped identities; close keeps the rest; a failed write fails nothing',
  async (t) => {
    const ca = await LocalCaClient.create();
    const dir = freshDir(t);
    const { log, lines } = capturingLog();
    const manager = new CertificateManager({
      caClient: ca,
      trustDomain: TD,
      ttlSeconds: 3600,
      log,
      cache: CertificateCache.open({ dir, log }),
    });
    const both = Promise.all([issuedFor(manager, id('web')), issuedFor(manager, id('db'))]);
    manager.setWanted([id('web'), id('db')]);
    await both;
    t.equal(readdirSync(dir).length, 2, 'prefetched certificates are saved');
    manager.setWanted([id('web')]);
    t.same(readdirSync(dir), [cacheFileName(id('web'))], 'the dropped identity left the cache');
    manager.close();
    t.same(readdirSync(dir), [cacheFileName(id('web'))], 'close keeps the cache for the next start');
    manager.forget(id('web'));
    t.ok(existsSync(join(dir, cacheFileName(id('web')))), 'nothing is un-cached after close');

    // The directory disappears under a running manager: issuance goes on, the failure is logged.
    const other = new CertificateManager({
      caClient: ca,
      trustDomain: TD,
      ttlSeconds: 3600,
      log,
      cache: CertificateCache.open({ dir, log }),
    });
    t.teardown(() => other.close());
    rmSync(dir, { recursive: true });
    const cert = await other.fetch(id('api'));
    t.ok(cert.serialNumber, 'the certificate is issued and served');
    t.match(
      lines.find((l) => l.msg === 'certificate cache write failed'),
      {
        level: WARN,
        identity: id('api'),
        action: 'save',
      },
    );
  },
);

/** An OpenSSL-made root and intermediate (both P-256) in Istio's cacerts layout, for the real CA. */
async function opensslPluginDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-plugin-'));
  const p = (f: string) => join(dir, f);
  const openssl = async (args: string[]) => {
    const r = await run('openssl', args);
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  writeFileSync(
    p('ca.ext'),
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  );
  await openssl(
    ['req', '-x509', ...ec, '-keyout', p('root-key.pem'), '-out', p('root-cert.pem')].concat(
      ['-days', '30', '-subj', '/O=cluster.local/CN=Cache Test Root'],
      ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ),
  );
  await openssl(
    ['req', '-new', ...ec, '-keyout', p('ca-key.pem'), '-out', p('ca.csr')].concat([
      '-subj',
      '/O=cluster.local/CN=Cache Test Intermediate',
    ]),
  );
  await openssl(
    ['x509', '-req', '-in', p('ca.csr'), '-CA', p('root-cert.pem'), '-CAkey', p('root-key.pem')].concat([
      '-CAcreateserial',
      '-days',
      '20',
      '-extfile',
      p('ca.ext'),
      '-out',
      p('ca-cert.pem'),
    ]),
  );
  copyFileSync(p('ca-cert.pem'), p('cert-chain.pem'));
  return dir;
}

const opensslMissing = (await run('openssl', ['version'])).code === 0 ? undefined : 'openssl not found';

t.test(
  'OpenSSL verifies the stored chain through the intermediate, and the stored key matches the leaf',
  { skip: skipReason(t, opensslMissing) },
  async (t) => {
    const plugin = await opensslPluginDir();
    t.teardown(() => removeDir(plugin));
    const ca = await startTestCa({
      pluginDir: plugin,
      placement: new StaticPlacement({ 'node-1': ['default/web'] }),
    });
    t.teardown(async () => {
      await ca.close();
      removeDir(ca.stateDir);
    });
    const tokenFile = join(ca.stateDir, 'agent-token');
    writeFileSync(tokenFile, createNodeToken(join(ca.stateDir, NODE_TOKENS_FILE), 'node-1'));
    const rootFile = join(ca.stateDir, 'mesh-root.pem');
    writeFileSync(rootFile, ca.authority.rootsPem);
    const client = new GrpcCaClient({
      address: ca.grpcAddress,
      rootCertFile: rootFile,
      tokenFile,
      serverName: 'localhost',
    });
    t.teardown(() => client.close());
    const dir = freshDir(t);
    const { log } = capturingLog();
    const manager = new CertificateManager({
      caClient: client,
      trustDomain: TD,
      ttlSeconds: 3600,
      log,
      cache: CertificateCache.open({ dir, log }),
    });
    t.teardown(() => manager.close());
    await manager.fetch(id('web'));

    // What the cache stores, as OpenSSL sees it.
    const entry = JSON.parse(readFileSync(join(dir, cacheFileName(id('web'))), 'utf8')) as {
      privateKeyPem: string;
      certChainPem: string;
      rootsPem: string;
    };
    const chain = parseCertificates(entry.certChainPem).map((c) => c.toString('pem') + '\n');
    t.equal(chain.length, 2, 'leaf and intermediate');
    const files = writeTempFiles({
      'leaf.pem': chain[0]!,
      'inter.pem': chain.slice(1).join(''),
      'roots.pem': entry.rootsPem,
      'key.pem': entry.privateKeyPem,
    });
    t.teardown(() => removeDir(files.dir));
    const f = files.paths as Record<'leaf.pem' | 'inter.pem' | 'roots.pem' | 'key.pem', string>;
    const v = await run('openssl', [
      'verify',
      '-CAfile',
      f['roots.pem'],
      '-untrusted',
      f['inter.pem'],
      f['leaf.pem'],
    ]);
    t.equal(v.code, 0, `openssl verify: ${v.stdout}${v.stderr}`);
    t.match(v.stdout, /leaf\.pem: OK/);
    const noInter = await run('openssl', ['verify', '-CAfile', f['roots.pem'], f['leaf.pem']]);
    t.not(noInter.code, 0, 'without the stored intermediate it does not verify (the stored chain matters)');

    const fromKey = await run('openssl', ['pkey', '-in', f['key.pem'], '-pubout']);
    const fromCert = await run('openssl', ['x509', '-in', f['leaf.pem'], '-noout', '-pubkey']);
    t.equal(fromKey.code, 0, fromKey.stderr);
    t.equal(fromCert.code, 0, fromCert.stderr);
    t.match(fromKey.stdout, /BEGIN PUBLIC KEY/);
    t.equal(fromKey.stdout, fromCert.stdout, 'the stored key is the leaf’s');
    const text = await run('openssl', ['x509', '-in', f['leaf.pem'], '-noout', '-ext', 'subjectAltName']);
    t.match(text.stdout, `URI:${id('web')}`);

    // And the same bytes restore, checked against the configured mesh root.
    const restored = await CertificateCache.open({ dir, log }).load(TD, ca.authority.rootsPem);
    t.equal(restored.length, 1, 'the stored chain restores through the intermediate');
  },
);
