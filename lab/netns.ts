// Linux network namespaces and veth links for the lab and end-to-end tests (root only). Every name is
// made unique per run, so parallel tests and an interrupted run do not collide.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export async function ip(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('ip', args);
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

/** Why network namespaces cannot be used here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, veth)';
  const probe = `wprobe${randomBytes(3).toString('hex')}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
    return undefined;
  } catch (err) {
    return `cannot create network namespaces: ${(err as Error).message}`;
  }
}

export class Netns {
  constructor(readonly name: string) {}

  exec(...args: string[]): Promise<string> {
    return ip('netns', 'exec', this.name, ...args);
  }

  /** Starts a long-running process inside the namespace. */
  spawn(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], options);
  }
}

export interface NodeSpec {
  /** Pod addresses hosted on this node (as /32s on its loopback, routed to it from the peer). */
  readonly podIps: readonly string[];
  /** The node's own address on the inter-node link. */
  readonly linkIp: string;
  /** The prefix of pod addresses routed to this node, e.g. 10.77.1.0/24. */
  readonly podCidr: string;
}

/**
 * Two "nodes", each a network namespace, joined by a veth pair. Pods are addresses on the node's
 * loopback for now (capture gives each pod its own namespace later); the routes send each node's pod
 * range across the link, so traffic between nodes crosses a real kernel path.
 */
export class TwoNodeTopology {
  private constructor(
    readonly nodes: readonly [Netns, Netns],
    readonly specs: readonly [NodeSpec, NodeSpec],
  ) {}

  static async create(specs: readonly [NodeSpec, NodeSpec]): Promise<TwoNodeTopology> {
    const id = randomBytes(3).toString('hex');
    const nodes = [new Netns(`wn1-${id}`), new Netns(`wn2-${id}`)] as const;
    const topo = new TwoNodeTopology(nodes, specs);
    try {
      for (const n of nodes) await ip('netns', 'add', n.name);
      const [a, b] = [`wv1-${id}`, `wv2-${id}`];
      await ip(
        'link',
        'add',
        a,
        'netns',
        nodes[0].name,
        'type',
        'veth',
        'peer',
        'name',
        b,
        'netns',
        nodes[1].name,
      );
      const ends = [a, b] as const;
      for (let i = 0; i < 2; i++) {
        const n = nodes[i]!;
        const spec = specs[i]!;
        const other = specs[1 - i]!;
        await n.exec('ip', 'link', 'set', 'lo', 'up');
        await n.exec('ip', 'link', 'set', ends[i]!, 'up');
        await n.exec('ip', 'addr', 'add', `${spec.linkIp}/30`, 'dev', ends[i]!);
        for (const podIp of spec.podIps) await n.exec('ip', 'addr', 'add', `${podIp}/32`, 'dev', 'lo');
        await n.exec('ip', 'route', 'add', other.podCidr, 'via', other.linkIp);
      }
      return topo;
    } catch (err) {
      await topo.destroy();
      throw err;
    }
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) await ip('netns', 'del', n.name).catch(() => undefined);
  }
}
