// tcpdump on the links between the lab's nodes for a whole run: one capture per node uplink (inside the
// node's namespace, where the uplink is), its pcap read from a pipe by PcapScanner, nothing written to
// disk. Every packet between two nodes crosses two uplinks, so each appears in two captures; they are
// reported per link. Any other device of a node's namespace can be added (a pod's host-side veth). tcpdump's own count of what the kernel dropped is kept: a capture that dropped
// packets cannot prove that none of them held plaintext.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { PcapScanner, type PcapScan } from './pcap-scan.js';

/** tcpdump's kernel buffer (KiB): a burst of the run's traffic must fit while the reader is busy. */
const BUFFER_KIB = 16_384;
/** How long tcpdump may take to start capturing, and to stop and print its counts. */
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface LinkToCapture {
  /** What the device is: `uplink`, `waypoint pod`. */
  readonly what: string;
  readonly node: string;
  readonly netns: string;
  readonly device: string;
}

export interface LinkCaptureResult extends PcapScan {
  readonly what: string;
  readonly node: string;
  readonly device: string;
  /** tcpdump's counts at exit; null when it printed none. */
  readonly capturedByTcpdump: number | null;
  readonly droppedByKernel: number | null;
  /** Why the capture did not cover the whole run, if it did not. */
  readonly problem?: string;
}

class OneCapture {
  readonly scanner: PcapScanner;
  readonly child: ChildProcess;
  stderr = '';
  parseError: string | undefined;

  constructor(
    readonly link: LinkToCapture,
    needles: readonly string[],
  ) {
    this.scanner = new PcapScanner(needles);
    // -U: each packet written as it is captured; -n: no name lookups; -s 0: whole packets.
    this.child = spawn(
      'ip',
      [
        'netns',
        'exec',
        link.netns,
        'tcpdump',
        '-i',
        link.device,
        '-n',
        '-s',
        '0',
        '-U',
        '-B',
        String(BUFFER_KIB),
        '-w',
        '-',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child.stdout!.on('data', (chunk: Buffer) => {
      if (this.parseError !== undefined) return;
      try {
        this.scanner.push(chunk);
      } catch (err) {
        this.parseError = (err as Error).message;
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  /** Resolves once tcpdump says it is listening. */
  async started(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!/listening on/.test(this.stderr)) {
      if (this.child.exitCode !== null)
        throw new Error(`tcpdump on ${this.link.node} ${this.link.device} exited: ${this.stderr.trim()}`);
      if (Date.now() > deadline)
        throw new Error(
          `tcpdump on ${this.link.node} ${this.link.device} did not start: ${this.stderr.trim()}`,
        );
      await sleep(50);
    }
  }

  async stop(): Promise<LinkCaptureResult> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = once(this.child, 'exit');
      this.child.kill('SIGINT');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    // The pipe's last bytes may come after the exit.
    if (!this.child.stdout!.readableEnded) await once(this.child.stdout!, 'end').catch(() => undefined);
    const count = (what: string): number | null => {
      const m = new RegExp(`(\\d+) packets? ${what}`).exec(this.stderr);
      return m === null ? null : Number(m[1]);
    };
    const dropped = count('dropped by kernel');
    const problems = [
      ...(this.parseError === undefined ? [] : [`its pcap stream could not be read: ${this.parseError}`]),
      ...(dropped !== null && dropped > 0 ? [`the kernel dropped ${dropped} packets`] : []),
      ...(dropped === null ? [`tcpdump printed no counts: ${this.stderr.trim().slice(-300)}`] : []),
    ];
    return {
      what: this.link.what,
      node: this.link.node,
      device: this.link.device,
      ...this.scanner.result(),
      capturedByTcpdump: count('captured'),
      droppedByKernel: dropped,
      ...(problems.length > 0 ? { problem: problems.join('; ') } : {}),
    };
  }
}

export class LinkCapture {
  readonly #captures: OneCapture[];

  private constructor(captures: OneCapture[]) {
    this.#captures = captures;
  }

  /** Starts one tcpdump per link, searching every packet for `needles`; resolves once all capture. */
  static async start(links: readonly LinkToCapture[], needles: readonly string[]): Promise<LinkCapture> {
    const capture = new LinkCapture(links.map((l) => new OneCapture(l, needles)));
    try {
      await Promise.all(capture.#captures.map((c) => c.started()));
    } catch (err) {
      await capture.stop();
      throw err;
    }
    return capture;
  }

  stop(): Promise<LinkCaptureResult[]> {
    return Promise.all(this.#captures.map((c) => c.stop()));
  }
}
