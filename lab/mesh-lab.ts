// A two-node mesh in network namespaces: the CA and one agent per node as real processes, pods as
// addresses on each node, config from a manifest folder. Used by end-to-end tests and the bench.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeToken, NODE_TOKENS_FILE } from '../ca/node-tokens.js';
import { SELF_SIGNED_FILES } from '../ca/authority.js';
import { CA_SERVER_NAME, caServeArgs } from './ca-process.js';
import { stopChild, waitFor, weftCliPath } from './processes.js';
import { TwoNodeTopology, type Netns, type NodeSpec } from './netns.js';

export const LAB_NODES: readonly [NodeSpec, NodeSpec] = [
  { podIps: ['10.77.1.10', '10.77.1.11', '10.77.1.12'], linkIp: '10.77.0.1', podCidr: '10.77.1.0/24' },
  { podIps: ['10.77.2.10', '10.77.2.11', '10.77.2.12'], linkIp: '10.77.0.2', podCidr: '10.77.2.0/24' },
];
export const LAB_NODE_NAMES = ['node-1', 'node-2'] as const;
const CA_ADDR = `${LAB_NODES[0].linkIp}:15012`;
const CA_HTTP = `${LAB_NODES[0].linkIp}:15014`;

export class MeshLab {
  readonly children: ChildProcess[] = [];
  /** Processes by the name they were started with (`ca`, `agent-node-1`, …). */
  readonly processes = new Map<string, ChildProcess>();

  private constructor(
    readonly dir: string,
    readonly topology: TwoNodeTopology,
  ) {}

  get manifestsDir(): string {
    return join(this.dir, 'manifests');
  }

  get caDir(): string {
    return join(this.dir, 'ca');
  }

  get rootCertFile(): string {
    return join(this.caDir, SELF_SIGNED_FILES.cert);
  }

  node(i: 0 | 1): Netns {
    return this.topology.nodes[i];
  }

  /** Builds the namespaces, writes `manifests`, starts the CA and both agents, waits until ready. */
  static async start(manifests: Record<string, string>): Promise<MeshLab> {
    const dir = mkdtempSync(join(tmpdir(), 'weft-lab-'));
    const topology = await TwoNodeTopology.create(LAB_NODES);
    const lab = new MeshLab(dir, topology);
    try {
      mkdirSync(lab.manifestsDir);
      mkdirSync(join(dir, 'logs'));
      for (const [name, body] of Object.entries(manifests)) lab.writeManifest(name, body);
      lab.spawnWeft(0, 'ca', caServeArgs(lab.caDir, lab.manifestsDir, CA_ADDR, CA_HTTP));
      await waitFor('the CA', () => lab.httpOk(0, `http://${CA_HTTP}/healthz/ready`));
      for (const i of [0, 1] as const) {
        const tokenFile = join(dir, `${LAB_NODE_NAMES[i]}.token`);
        writeFileSync(tokenFile, createNodeToken(join(lab.caDir, NODE_TOKENS_FILE), LAB_NODE_NAMES[i]), {
          mode: 0o600,
        });
        lab.spawnWeft(i, `agent-${LAB_NODE_NAMES[i]}`, [
          'agent',
          'run',
          '--node',
          LAB_NODE_NAMES[i],
          '--config',
          `file:${lab.manifestsDir}`,
          '--ca-address',
          CA_ADDR,
          '--ca-server-name',
          CA_SERVER_NAME,
          '--ca-root',
          lab.rootCertFile,
          '--token-file',
          tokenFile,
        ]);
      }
      for (const i of [0, 1] as const)
        await waitFor(`agent ${LAB_NODE_NAMES[i]}`, () =>
          lab.httpOk(i, 'http://127.0.0.1:15021/healthz/ready'),
        );
      return lab;
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }

  writeManifest(name: string, body: string): void {
    writeFileSync(join(this.manifestsDir, name), body);
  }

  removeManifest(name: string): void {
    rmSync(join(this.manifestsDir, name), { force: true });
  }

  spawnWeft(node: 0 | 1, name: string, args: string[]): ChildProcess {
    const log = openSync(join(this.dir, 'logs', `${name}.log`), 'a');
    const child = this.node(node).spawn(process.execPath, [weftCliPath(), ...args], {
      stdio: ['ignore', log, log],
    });
    this.track(name, child);
    return child;
  }

  /** Registers a process the lab must stop. */
  track(name: string, child: ChildProcess): void {
    this.children.push(child);
    this.processes.set(name, child);
  }

  /** GET `url` from inside node `i`; the body, or undefined when not 2xx. */
  async httpGet(i: 0 | 1, url: string): Promise<string | undefined> {
    try {
      return await this.node(i).exec('curl', '-sf', '--max-time', '5', url);
    } catch {
      return undefined;
    }
  }

  async httpOk(i: 0 | 1, url: string): Promise<true | undefined> {
    return (await this.httpGet(i, url)) === undefined ? undefined : true;
  }

  /** The agent's /config_dump on node `i`. */
  async configDump(
    i: 0 | 1,
  ): Promise<{ configVersion: number; certificates: { spiffeId: string; state: string }[] }> {
    const body = await this.httpGet(i, 'http://127.0.0.1:15000/config_dump');
    if (body === undefined) throw new Error(`no config_dump from ${LAB_NODE_NAMES[i]}`);
    return JSON.parse(body) as { configVersion: number; certificates: { spiffeId: string; state: string }[] };
  }

  /** Waits until both agents applied a config version above the ones they had before `change()`. */
  async applyAndWait(change: () => void): Promise<void> {
    const before = [(await this.configDump(0)).configVersion, (await this.configDump(1)).configVersion];
    change();
    for (const i of [0, 1] as const)
      await waitFor(`${LAB_NODE_NAMES[i]} to apply the change`, async () =>
        (await this.configDump(i)).configVersion > before[i]! ? true : undefined,
      );
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map(stopChild));
    await this.topology.destroy();
    if (!process.env.WEFT_KEEP_LAB) rmSync(this.dir, { recursive: true, force: true });
  }
}
