// Transparent capture, as the agent runs it (node network namespace, root): load and attach the eBPF
// programs, publish the transparent listeners, keep every pod-facing interface attached, and give the
// rest of the agent a dialer whose sockets are marked (never re-captured) and carry the original
// client's address. Refuses to start, with the reasons, where the kernel cannot capture: an enrolled
// pod's traffic must never leave in plaintext because capture silently did not happen.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type net from 'node:net';
import { promisify } from 'node:util';
import {
  CAPTURE_OBJECT_PATH,
  MARK,
  PinnedMaps,
  captureProblems,
  connectMarked,
  loadAddon,
  steerRoutingArgs,
  type WeftEbpfAddon,
} from '../ebpf-redirect/index.js';
import { WeftError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { CAPTURE_DRAIN, CAPTURE_INBOUND, CAPTURE_OUTBOUND, type EnrolmentTable } from './enrolment.js';
import type { UpstreamDialer } from './socket.js';

const execFileAsync = promisify(execFile);

export const OUTBOUND_CAPTURE_PORT = 15001;
export const PLAINTEXT_CAPTURE_PORT = 15006;
/** Listener backlog for captured connections (Node's default is 511). */
const BACKLOG = 4096;

export interface CaptureOptions {
  /** Where maps, programs and the sk_lookup link are pinned; survives agent restarts. */
  readonly pinDir: string;
  /** The bpf filesystem to mount when it is not mounted (pinDir must be inside it). */
  readonly bpffs: string;
  /** Interfaces never to attach to (besides lo). */
  readonly skipInterfaces?: readonly string[];
}

/** Socket cookies of the published listeners. */
export interface PublishedListeners {
  readonly outbound: bigint | undefined;
  readonly plaintext: bigint | undefined;
  readonly hbone: bigint | undefined;
}

export interface CaptureListenerFds {
  readonly outbound: number;
  readonly plaintext: number;
  readonly hbone: number;
}

async function ip(...args: readonly string[]): Promise<void> {
  await execFileAsync('ip', args);
}

/**
 * The interfaces of this process's network namespace, from /proc/self/net/dev (per network namespace,
 * unlike /sys/class/net, which a process that entered the namespace with `nsenter --net` sees from the
 * namespace it came from). Read every INTERFACE_SCAN period, so it must be cheap: spawning `ip link`
 * instead blocked the agent's event loop ~5 ms each time, a stall ~1 % of proxied requests waited on.
 */
async function linkNames(): Promise<string[]> {
  const text = await readFile('/proc/self/net/dev', 'utf8');
  const names: string[] = [];
  // Two header lines, then `  <name>: <counters…>` per interface.
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon > 0) names.push(line.slice(0, colon).trim());
  }
  return names;
}

/** Whether a bpf filesystem is mounted at `path` (start-up only). */
function isBpffsMounted(path: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => {
      const [, mountPoint, type] = line.split(' ');
      return mountPoint === path && type === 'bpf';
    });
}

export class Capture {
  readonly #addon: WeftEbpfAddon;
  readonly #maps: PinnedMaps;
  readonly #attached = new Set<number>();
  readonly #skip: Set<string>;
  #watch: NodeJS.Timeout | undefined = undefined;
  #scanning = false;

  private constructor(
    readonly options: CaptureOptions,
    readonly log: Logger,
    addon: WeftEbpfAddon,
  ) {
    this.#addon = addon;
    this.#maps = new PinnedMaps(options.pinDir, addon);
    this.#skip = new Set(['lo', ...(options.skipInterfaces ?? [])]);
  }

  /** Everything up to the listeners: programs loaded (or re-opened), routing, sk_lookup, interfaces. */
  static async start(options: CaptureOptions, log: Logger): Promise<Capture> {
    if (!existsSync(options.bpffs)) mkdirSync(options.bpffs, { recursive: true });
    if (!isBpffsMounted(options.bpffs)) await execFileAsync('mount', ['-t', 'bpf', 'bpf', options.bpffs]);
    const problems = captureProblems(options.bpffs);
    if (problems.length > 0)
      throw new WeftError(
        'ERR_CONFIG_INVALID',
        `transparent capture cannot run here: ${problems.join('; ')}`,
      );
    const addon = loadAddon();
    mkdirSync(options.pinDir, { recursive: true });
    const loaded = addon.load(CAPTURE_OBJECT_PATH, options.pinDir);
    const capture = new Capture(options, log, addon);
    const routing = steerRoutingArgs();
    // Idempotent: an agent restart finds its rule and route in place.
    await ip(...routing.rule).catch(() => undefined);
    await ip(...routing.route).catch(() => undefined);
    const sk = addon.attachSkLookup('/proc/self/ns/net', options.pinDir);
    await capture.attachInterfaces();
    log.info(
      { pin_dir: options.pinDir, reused_maps: loaded.reusedMaps, sk_lookup_reused: sk.reused },
      'capture programs ready',
    );
    return capture;
  }

  /** Transparent listeners for :15001, :15006 and :15008 (on 127.0.0.1; pods cannot dial them). */
  listen(): CaptureListenerFds {
    return {
      outbound: this.#addon.listenTransparent('127.0.0.1', OUTBOUND_CAPTURE_PORT, BACKLOG),
      plaintext: this.#addon.listenTransparent('127.0.0.1', PLAINTEXT_CAPTURE_PORT, BACKLOG),
      hbone: this.#addon.listenTransparent('127.0.0.1', 15008, BACKLOG),
    };
  }

  /**
   * Publishes the listening sockets: from now on the kernel steers new connections to them, and not to
   * those of an agent this one replaces (its listeners share the ports through SO_REUSEPORT; the
   * sk_lookup program assigns exactly the published socket). Returns what identifies this publication.
   */
  publish(fds: CaptureListenerFds): PublishedListeners {
    this.#maps.putListener('outbound', fds.outbound);
    this.#maps.putListener('inbound', fds.plaintext);
    this.#maps.putListener('hbone', fds.hbone);
    return this.publishedListeners();
  }

  /** The sockets the kernel steers to now, by socket cookie (undefined: none, captured traffic fails). */
  publishedListeners(): PublishedListeners {
    return {
      outbound: this.#maps.listenerCookie('outbound'),
      plaintext: this.#maps.listenerCookie('inbound'),
      hbone: this.#maps.listenerCookie('hbone'),
    };
  }

  /**
   * Attaches the tc program to every interface not attached yet (pod veths appear as pods start):
   * called at start and on each config change. Cheap when nothing is new.
   */
  async attachInterfaces(): Promise<void> {
    for (const name of await linkNames()) {
      if (this.#skip.has(name)) continue;
      let index: number;
      try {
        index = this.#addon.ifNameToIndex(name);
      } catch {
        continue; // gone meanwhile
      }
      if (this.#attached.has(index)) continue;
      try {
        this.#addon.attachTcIngress(index, this.options.pinDir);
        this.#attached.add(index);
        this.log.info({ interface: name }, 'capture attached');
      } catch (err) {
        this.log.warn(
          { interface: name, error: errorMessage(err) },
          'capture could not attach to an interface',
        );
      }
    }
  }

  /**
   * Re-scans interfaces every `intervalMs`: a pod's veth can appear after the config change that
   * announced the pod, and its traffic must be captured from its first connection on.
   */
  watchInterfaces(intervalMs: number): void {
    if (this.#watch) return;
    const tick = (): void => {
      if (this.#scanning) return;
      this.#scanning = true;
      this.attachInterfaces()
        .catch((err: unknown) => this.log.warn({ error: errorMessage(err) }, 'interface scan failed'))
        .finally(() => (this.#scanning = false));
    };
    this.#watch = setInterval(tick, intervalMs);
    this.#watch.unref();
  }

  close(): void {
    clearInterval(this.#watch);
    this.#watch = undefined;
  }

  /** The enrolment map as the controller's table. */
  table(): EnrolmentTable {
    const maps = this.#maps;
    return {
      set: (ipAddr, flags) =>
        maps.enrol(ipAddr, {
          outbound: (flags & CAPTURE_OUTBOUND) !== 0,
          inbound: (flags & CAPTURE_INBOUND) !== 0,
          drain: (flags & CAPTURE_DRAIN) !== 0,
        }),
      delete: (ipAddr) => void maps.unenrol(ipAddr),
      entries: () =>
        [...maps.enrolments()].map(([ipAddr, e]): [string, number] => [
          ipAddr,
          (e.outbound ? CAPTURE_OUTBOUND : 0) |
            (e.inbound ? CAPTURE_INBOUND : 0) |
            (e.drain ? CAPTURE_DRAIN : 0),
        ]),
    };
  }

  /** Counters for metrics and /config_dump. */
  stats(): Readonly<Record<string, number>> {
    return this.#maps.readStats();
  }
}

/** Onward connections: marked so no capture hook takes them again, from the original client's address. */
export const markedDialer: UpstreamDialer = (host, port, sourceIp, timeoutMs) =>
  new Promise<net.Socket>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new WeftError('ERR_CONNECT', `connect to ${host}:${port} timed out after ${timeoutMs} ms`, {
            peer: `${host}:${port}`,
          }),
        ),
      timeoutMs,
    );
    connectMarked(host, port, { mark: MARK.onward, ...(sourceIp && { sourceIp }) }).then(
      (s) => {
        clearTimeout(timer);
        s.setNoDelay(true);
        resolve(s);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(
          new WeftError(
            'ERR_CONNECT',
            `connect to ${host}:${port} failed: ${errorMessage(err)}`,
            { peer: `${host}:${port}` },
            err,
          ),
        );
      },
    );
  });
