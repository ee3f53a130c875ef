// `file:DIR`: a folder of Kubernetes manifests (*.yaml, *.yml, *.json, in subfolders too), watched.
//
// How changes are found: every directory has a (non-recursive) fs.watch. Any event, whatever its kind
// or filename, schedules one rescan after a short quiet period. A rescan lists the tree and stats each
// file, then re-reads the files that are new, whose (inode, size, mtime) changed, or that an event named.
// This covers editors that save by writing a temp file and renaming it over the original (the inode
// changes), Kubernetes ConfigMap mounts that swap a `..data` symlink, and directories coming and going.
// Symlinks are followed, but each directory (by device and inode) is walked once per rescan, so a link
// loop or a second link to a folder neither repeats the walk nor defines its objects twice.
//
// Invariants: rescans never overlap; after `stop()` resolves no rescan starts and no batch is applied;
// a rescan starts at most `maxWaitMs` after the first unscanned event however busy the folder is (or,
// if one is running then, as soon as it ends); a file that cannot be read or parsed keeps its objects'
// last good records (see manifest-file.ts).
import { watch, type BigIntStats, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { formatRejection } from '../convert/rejection.js';
import { WeftError, errorMessage } from '../errors.js';
import { componentLogger } from '../log.js';
import { readManifestFile, unreadableFile } from './manifest-file.js';
import { isEmptyBatch, ManifestSet } from './manifest-set.js';
import type { ConfigSink, ConfigSource } from './source.js';

const log = componentLogger('core.file-source');

/**
 * Long enough to fold an editor's write-rename-chmod burst (a few ms apart) into one rescan, short
 * enough that a change is live well under a human's notice.
 */
export const DEFAULT_DEBOUNCE_MS = 75;
/**
 * The debounce waits for a quiet period, which a folder written to without pause (a generator
 * rewriting a file every few ms) never has. After this long a rescan runs anyway, so config lags such a
 * writer by about a second rather than for as long as it keeps writing.
 */
export const DEFAULT_MAX_WAIT_MS = 1000;

const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];
/** Real config trees are a few levels deep; deeper ones are cut off rather than walked without end. */
const MAX_DEPTH = 16;

/**
 * Time as the rescan debounce sees it; injected so tests move it by hand. (The same shape as the
 * certificate manager's Clock, so one fake serves both.)
 */
/** The clock the debounce runs on. */
export type RescanClock = Clock;

export interface FileSourceOptions {
  /** How long the folder must be quiet after an event before a rescan. */
  readonly debounceMs?: number;
  /** The longest a rescan waits after the first event it would cover, quiet or not. */
  readonly maxWaitMs?: number;
  readonly clock?: RescanClock;
}

interface FoundFile {
  readonly path: string;
  /** Changes whenever the content may have: inode (rename-replace), size, mtime. */
  readonly stamp: string;
}

export class FileSource implements ConfigSource {
  readonly description: string;
  readonly #root: string;
  /** Files are named in rejections as `<folder name>/<path inside it>`, e.g. `manifests/bad.yaml`. */
  readonly #displayPrefix: string;
  readonly #debounceMs: number;
  readonly #maxWaitMs: number;
  readonly #clock: RescanClock;
  readonly #manifests = new ManifestSet();
  readonly #stamps = new Map<string, string>();
  readonly #watchers = new Map<string, FSWatcher>();
  /** Display names of files an event named since the last rescan: re-read even if their stamp matches. */
  readonly #touched = new Set<string>();
  #sink: ConfigSink | undefined;
  #timer: { cancel(): void } | undefined;
  /** When the first event not yet covered by a (started) rescan arrived; anchors the maximum wait. */
  #firstEventAt: number | undefined;
  #rescanning: Promise<void> | undefined;
  #rescanAgain = false;
  #stopped = false;

  constructor(root: string, options: FileSourceOptions = {}) {
    this.#root = root;
    this.#displayPrefix = basename(root);
    this.#debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.#maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    this.#clock = options.clock ?? systemClock;
    this.description = `file:${root}`;
  }

  async start(sink: ConfigSink): Promise<void> {
    if (this.#sink !== undefined)
      throw new WeftError('ERR_CONFIG_INVALID', `${this.description}: already started`);
    const rootStat = await stat(this.#root).catch((err: unknown) => {
      throw new WeftError(
        'ERR_CONFIG_INVALID',
        `${this.description}: cannot read the folder: ${errorMessage(err)}`,
        {},
        err,
      );
    });
    if (!rootStat.isDirectory())
      throw new WeftError('ERR_CONFIG_INVALID', `${this.description}: not a directory`);
    this.#sink = sink;
    // Watch before the first scan so that a change made during it schedules another.
    this.#watchDirectory(this.#root);
    await this.#runRescan(true);
    log.info({ source: this.description, files: this.#stamps.size }, 'initial config loaded');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
    await this.#rescanning;
  }

  #watchDirectory(dir: string): void {
    if (this.#watchers.has(dir) || this.#stopped) return;
    try {
      const watcher = watch(dir, { persistent: true }, (_event, filename) => this.#onEvent(dir, filename));
      watcher.on('error', (err) => {
        // Usually the directory was removed; the rescan notices and drops its files.
        log.debug({ dir, error: errorMessage(err) }, 'watch failed');
        watcher.close();
        this.#watchers.delete(dir);
        this.#schedule();
      });
      this.#watchers.set(dir, watcher);
    } catch (err) {
      log.warn({ dir, error: errorMessage(err) }, 'cannot watch directory');
    }
  }

  #onEvent(dir: string, filename: string | Buffer | null): void {
    if (filename !== null) this.#touched.add(this.#displayName(join(dir, filename.toString())));
    this.#schedule();
  }

  /** Trailing debounce, capped: quiet for `debounceMs`, or `maxWaitMs` after the first event. */
  #schedule(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    this.#firstEventAt ??= now;
    const untilMaxWait = this.#firstEventAt + this.#maxWaitMs - now;
    this.#timer?.cancel();
    this.#timer = this.#clock.schedule(Math.max(0, Math.min(this.#debounceMs, untilMaxWait)), this.#onQuiet);
  }

  readonly #onQuiet = (): void => {
    this.#timer = undefined;
    this.#firstEventAt = undefined;
    this.#startRescan();
  };

  /** Starts a rescan now, or right after the running one; never once `stop()` was called. */
  #startRescan(): void {
    // Also reached from a finishing rescan that `stop()` may be waiting for.
    if (this.#stopped) return;
    if (this.#rescanning !== undefined) {
      this.#rescanAgain = true;
      return;
    }
    this.#runRescan(false).catch((err: unknown) =>
      log.error(
        { source: this.description, error: errorMessage(err) },
        'rescan failed; last good config keeps serving',
      ),
    );
  }

  /** Runs one rescan; a change noticed meanwhile runs another right after, so rescans never overlap. */
  #runRescan(initial: boolean): Promise<void> {
    const running = this.#rescan(initial).finally(() => {
      this.#rescanning = undefined;
      if (this.#rescanAgain) {
        this.#rescanAgain = false;
        this.#startRescan();
      }
    });
    this.#rescanning = running.catch(() => undefined);
    return running;
  }

  async #rescan(initial: boolean): Promise<void> {
    const touched = new Set(this.#touched);
    this.#touched.clear();
    const { files, dirs } = await this.#walk();
    this.#syncWatchers(dirs);
    for (const name of [...this.#manifests.files()]) {
      if (files.has(name)) continue;
      log.info({ file: name }, 'manifest file removed');
      this.#manifests.removeFile(name);
      this.#stamps.delete(name);
    }
    for (const [name, found] of files) {
      if (this.#stamps.get(name) === found.stamp && !touched.has(name)) continue;
      await this.#readFile(name, found);
    }
    if (this.#stopped || this.#sink === undefined) return;
    const batch = this.#manifests.takeBatch();
    if (!initial && isEmptyBatch(batch)) return;
    for (const rejection of batch.rejections)
      log.warn({ rejection: formatRejection(rejection) }, 'config rejected');
    this.#sink.apply(batch);
  }

  async #readFile(name: string, found: FoundFile): Promise<void> {
    const previous = this.#manifests.contents(name);
    try {
      const text = await readFile(found.path, 'utf8');
      this.#manifests.setFile(name, readManifestFile(name, text, previous));
    } catch (err) {
      this.#manifests.setFile(name, unreadableFile(name, `cannot read file: ${errorMessage(err)}`, previous));
    }
    this.#stamps.set(name, found.stamp);
  }

  /** Every manifest file under the root (following symlinks, skipping dot-names) and every directory. */
  async #walk(): Promise<{ files: Map<string, FoundFile>; dirs: Set<string> }> {
    const files = new Map<string, FoundFile>();
    const dirs = new Set<string>();
    /** `dev:ino` of every directory walked: a directory reached again through a symlink is skipped. */
    const visited = new Set<string>();
    const firstVisit = (info: BigIntStats): boolean => {
      const id = `${info.dev}:${info.ino}`;
      if (visited.has(id)) return false;
      visited.add(id);
      return true;
    };
    const visit = async (dir: string, depth: number): Promise<void> => {
      dirs.add(dir);
      const entries = await readdir(dir).catch((err: unknown) => {
        if (dir === this.#root) throw err;
        return []; // a subdirectory removed mid-walk
      });
      for (const entry of entries.sort()) {
        // Dot-names are editor swap files and Kubernetes' `..data` indirection (reached via its symlinks).
        if (entry.startsWith('.')) continue;
        const path = join(dir, entry);
        // BigInt: on some filesystems inode numbers exceed 2^53, where plain numbers would round and collide.
        const info = await stat(path, { bigint: true }).catch(() => undefined);
        if (info === undefined) continue;
        if (info.isDirectory()) {
          if (depth < MAX_DEPTH && firstVisit(info)) await visit(path, depth + 1);
        } else if (info.isFile() && MANIFEST_EXTENSIONS.some((ext) => entry.endsWith(ext))) {
          files.set(this.#displayName(path), {
            path,
            stamp: `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}`,
          });
        }
      }
    };
    firstVisit(await stat(this.#root, { bigint: true }));
    await visit(this.#root, 0);
    return { files, dirs };
  }

  #syncWatchers(dirs: ReadonlySet<string>): void {
    for (const dir of dirs) this.#watchDirectory(dir);
    for (const [dir, watcher] of this.#watchers) {
      if (dirs.has(dir)) continue;
      watcher.close();
      this.#watchers.delete(dir);
    }
  }

  #displayName(path: string): string {
    return join(this.#displayPrefix, relative(this.#root, path)).split(sep).join('/');
  }
}
