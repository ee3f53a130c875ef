// Workload certificates kept on the node, so that an agent restarted (even killed) serves its pods again
// within a second, before the CA answers, and while the CA is down.
//
// One file per identity, named by the SHA-256 of its SPIFFE ID (a listing reveals no workload names),
// holding JSON: the PKCS#8 key, the chain (leaf and intermediates) and the root bundle in PEM. Nothing
// else is trusted from a file: serial and validity are read from the leaf again at load, and an entry
// serves only after the same checks as a CA answer (`checkWorkloadChain`), plus an expiry margin and, when
// given, the configured mesh roots. A rejected file is deleted and logged with its reason.
//
// The directory belongs on a memory filesystem. The chart mounts an emptyDir with medium Memory: it
// survives a container restart in the same pod but never touches the node's disk, and goes with the pod.
// The lab uses a folder under the lab directory. Keys are mode 0600, the directory 0700, both owned by
// the agent's uid: a directory open to group or others is closed (with a warning); one owned by another
// uid is refused, since its owner could read the keys or plant entries. Writes are atomic (temporary
// file in the same directory, then rename), so a kill mid-write leaves the old entry or the new one;
// not fsynced: on tmpfs there is nothing to sync, and a lost entry only means one CSR at the next start.
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { join } from 'node:path';
import { WeftError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { parseSpiffeId } from '../spiffe.js';
import { chainsToRoots, parseCertificates, type x509 } from '../x509.js';
import { systemClock, type Clock } from '../clock.js';
import { checkWorkloadChain, type WorkloadCertificate } from './manager.js';

/** Bumped when the entry layout changes; an entry of another version is rejected (one CSR re-makes it). */
const ENTRY_VERSION = 1;
const ENTRY_SUFFIX = '.json';
/** Marks a temporary file; one left over was being written when the agent died. */
const TEMP_MARK = '.tmp-';
/** A key, a few certificates and the roots fit in a few KiB; anything far larger is not ours. */
const MAX_ENTRY_BYTES = 1024 * 1024;
/**
 * A certificate that expires within this is not restored: it would fail handshakes in flight, and the
 * manager must renew it at once anyway (with the same wait on the CA as having none).
 */
export const RESTORE_EXPIRY_MARGIN_MS = 60_000;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/** What one cache file holds. */
interface CacheEntry {
  readonly version: number;
  readonly spiffeId: string;
  /** PKCS#8 PEM. */
  readonly privateKeyPem: string;
  /** Leaf then intermediates, PEM. */
  readonly certChainPem: string;
  /** The root bundle from the CA's answer. */
  readonly rootsPem: string;
}

/** The file name an identity is kept under: the SPIFFE ID's SHA-256, so names reveal no workload. */
export function cacheFileName(spiffeId: string): string {
  return createHash('sha256').update(spiffeId).digest('hex') + ENTRY_SUFFIX;
}

export interface CertificateCacheOptions {
  /** Created (mode 0700) when missing; see the module comment for where it belongs. */
  readonly dir: string;
  readonly log: Logger;
  /** Time for the validity checks at load; injected in tests. */
  readonly clock?: Clock;
}

type Verdict =
  | { readonly ok: true; readonly cert: WorkloadCertificate }
  | { readonly ok: false; readonly reason: string; readonly spiffeId: string | undefined };

/** One directory of workload certificates on the node. save/remove are synchronous: tiny writes to memory. */
export class CertificateCache {
  readonly dir: string;
  readonly #log: Logger;
  readonly #clock: Clock;

  private constructor(options: CertificateCacheOptions) {
    this.dir = options.dir;
    this.#log = options.log;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Opens (creating) the directory: refuses one owned by another uid or that is not a directory, and
   * closes one open to group or others to 0700 with a warning. Throws ERR_CONFIG_INVALID naming it.
   */
  static open(options: CertificateCacheOptions): CertificateCache {
    const dir = options.dir;
    const refuse = (why: string, cause?: unknown): WeftError =>
      new WeftError('ERR_CONFIG_INVALID', `certificate cache ${dir}: ${why}`, { object: dir }, cause);
    let st: Stats;
    try {
      mkdirSync(dir, { recursive: true, mode: DIR_MODE });
      st = statSync(dir);
    } catch (err) {
      throw refuse(`cannot create: ${errorMessage(err)}`, err);
    }
    if (!st.isDirectory()) throw refuse('is not a directory');
    const uid = process.getuid?.();
    // Owner first: a directory of another uid is never touched, not even chmod'ed.
    if (uid !== undefined && st.uid !== uid)
      throw refuse(
        `is owned by uid ${st.uid}, not this process's uid ${uid}; refusing to keep private keys where ` +
          'another user could read them or plant entries (chown it, or choose another directory)',
      );
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      try {
        chmodSync(dir, DIR_MODE);
      } catch (err) {
        throw refuse(`mode ${mode.toString(8)} is open to others and chmod 700 failed`, err);
      }
      options.log.warn(
        { dir, mode: mode.toString(8) },
        'certificate cache directory was open to group or others; now mode 700',
      );
    }
    return new CertificateCache(options);
  }

  /** Writes (replaces) the entry for `cert.spiffeId` atomically, mode 0600. Throws on I/O errors. */
  save(cert: WorkloadCertificate): void {
    const entry: CacheEntry = {
      version: ENTRY_VERSION,
      spiffeId: cert.spiffeId,
      privateKeyPem: cert.privateKeyPem,
      certChainPem: cert.certChainPem,
      rootsPem: cert.rootsPem,
    };
    const name = cacheFileName(cert.spiffeId);
    // Random and exclusive: a planted file or symlink of that name cannot receive the key.
    const tmp = join(this.dir, `.${name}${TEMP_MARK}${randomBytes(8).toString('hex')}`);
    const fd = openSync(tmp, 'wx', FILE_MODE);
    try {
      try {
        fchmodSync(fd, FILE_MODE); // the umask may have narrowed the mode; make it exactly 0600
        writeSync(fd, JSON.stringify(entry));
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, join(this.dir, name));
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
  }

  /** Deletes the entry for `spiffeId`, if any. Throws on I/O errors other than its absence. */
  remove(spiffeId: string): void {
    rmSync(join(this.dir, cacheFileName(spiffeId)), { force: true });
  }

  /**
   * Every entry that may serve now, in file-name order. An entry is accepted only when it parses, its
   * identity is in `trustDomain` and matches its file name, the file is a regular file of this uid closed to
   * group and others, the chain passes `checkWorkloadChain` against its own root bundle (leaf naming that
   * identity, key matching the leaf, valid now, chain verifying), the leaf expires later than
   * RESTORE_EXPIRY_MARGIN_MS from now, and, when `rootsPem` (the configured mesh roots) is given, the chain
   * also verifies up to those. Every other entry is deleted and logged with its reason; leftovers of an
   * interrupted write are deleted; files of other names are left alone with a warning.
   */
  async load(trustDomain: string, rootsPem?: string): Promise<WorkloadCertificate[]> {
    const anchors = rootsPem === undefined ? undefined : parseCertificates(rootsPem);
    if (anchors !== undefined && anchors.length === 0)
      throw new WeftError(
        'ERR_CONFIG_INVALID',
        'the trust bundle given to check cached certificates is empty',
      );
    const out: WorkloadCertificate[] = [];
    for (const name of readdirSync(this.dir).sort()) {
      const file = join(this.dir, name);
      if (name.includes(TEMP_MARK)) {
        this.#delete(file);
        this.#log.info({ file }, 'certificate cache: removed a write interrupted by the last exit');
        continue;
      }
      if (!name.endsWith(ENTRY_SUFFIX)) {
        this.#log.warn({ file }, 'certificate cache: not an entry; left alone');
        continue;
      }
      const verdict = await this.#check(name, trustDomain, anchors);
      if (verdict.ok) {
        out.push(verdict.cert);
        continue;
      }
      this.#delete(file);
      this.#log.warn(
        { file, identity: verdict.spiffeId, reason: verdict.reason },
        'cached certificate rejected and deleted',
      );
    }
    return out;
  }

  async #check(
    name: string,
    trustDomain: string,
    anchors: readonly x509.X509Certificate[] | undefined,
  ): Promise<Verdict> {
    const unnamed = (reason: string): Verdict => ({ ok: false, reason, spiffeId: undefined });
    const file = join(this.dir, name);
    let st: Stats;
    let text: string;
    try {
      st = lstatSync(file);
      if (!st.isFile()) return unnamed('not a regular file');
      if (st.size > MAX_ENTRY_BYTES) return unnamed(`${st.size} bytes; an entry is a few KiB`);
      text = readFileSync(file, 'utf8');
    } catch (err) {
      return unnamed(`unreadable: ${errorMessage(err)}`);
    }
    let entry: CacheEntry;
    try {
      entry = parseEntry(text);
    } catch (err) {
      return unnamed(errorMessage(err));
    }
    // Named from here on, for the log; nothing in the entry is trusted before the checks below.
    const spiffeId = entry.spiffeId;
    const bad = (reason: string): Verdict => ({ ok: false, reason, spiffeId });
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) return bad(`file owned by uid ${st.uid}, not ${uid}`);
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) return bad(`file mode ${mode.toString(8)}: a key open to group or others`);
    try {
      const td = parseSpiffeId(spiffeId).trustDomain;
      if (td !== trustDomain) return bad(`outside trust domain ${trustDomain}`);
    } catch (err) {
      return bad(errorMessage(err));
    }
    if (name !== cacheFileName(spiffeId)) return bad('file name is not the hash of the identity it holds');
    const now = new Date(this.#clock.now());
    const check = await checkWorkloadChain(
      spiffeId,
      [entry.certChainPem, entry.rootsPem],
      entry.privateKeyPem,
      now,
    );
    if (!check.ok) return bad(check.reason);
    const cert = check.cert;
    if (cert.notAfter.getTime() <= now.getTime() + RESTORE_EXPIRY_MARGIN_MS)
      return bad(`expires at ${cert.notAfter.toISOString()}, within ${RESTORE_EXPIRY_MARGIN_MS / 1000} s`);
    if (anchors && !(await chainsToRoots(parseCertificates(cert.certChainPem), anchors, now)))
      return bad('chain does not verify up to the configured mesh roots (has the root changed?)');
    return { ok: true, cert };
  }

  #delete(file: string): void {
    try {
      rmSync(file, { force: true });
    } catch (err) {
      this.#log.warn({ file, error: errorMessage(err) }, 'certificate cache: cannot delete');
    }
  }
}

/** The entry in `text`, or an Error saying what is missing. */
function parseEntry(text: string): CacheEntry {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${errorMessage(err)}`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
  const o = raw as Record<string, unknown>;
  if (o.version !== ENTRY_VERSION)
    throw new Error(`version ${JSON.stringify(o.version)}; this agent reads ${ENTRY_VERSION}`);
  for (const field of ['spiffeId', 'privateKeyPem', 'certChainPem', 'rootsPem'] as const)
    if (typeof o[field] !== 'string') throw new Error(`field ${field} is not a string`);
  return o as unknown as CacheEntry;
}
