// Network faults on the link between two lab nodes (`weft lab fault`), made with nftables inside the
// node namespaces (this kernel has no netem). The lab's fabric is a bridge, so "the link between A and
// B" is what A receives from B's addresses on its uplink and what B receives from A's.
//
// Invariants:
// - Everything lives in one table of our own, `inet weft_fault`, in each node namespace: clearing
//   deletes that table and touches no other rule. Deleting a node namespace (`weft lab down`) deletes it
//   too, so a fault never outlives its lab.
// - Faults drop on ingress, at the receiving node (prerouting, before conntrack): the sender's kernel
//   sees no local error, as when a wire or a switch loses packets. So a fault between A and B is two
//   chains, `from-B` in A and `from-A` in B, and each direction of the link gets the loss once.
// - One chain per (node, peer) pair, replaced whole in one nft transaction: applying a fault again, or
//   another fault to the same pair, is idempotent and leaves other pairs' faults alone.
// - A packet is the peer's when it arrives on the uplink from the peer's uplink IP (its agent's HBONE
//   connections, its CA) or pod CIDR (its pods' own traffic, which is routed, not tunnelled, unless
//   enrolled).
import { spawn } from 'node:child_process';
import type { LabState, NodeState } from './state.js';

export const FAULT_TABLE = 'weft_fault';
const FAMILY = 'inet';
/** Before conntrack (-200): a dropped packet is as if it was never sent. nft prints it as `raw`. */
const FAULT_PRIORITY = -300;
/** numgen draws from [0, LOSS_SCALE): percentages with two decimals. */
const LOSS_SCALE = 10_000;
/** nft answers in milliseconds; a stuck one must not hang the CLI or a test. */
const NFT_TIMEOUT_MS = 10_000;

export type LinkFault =
  | {
      readonly kind: 'loss';
      /** Of the packets crossing the link, per direction: (0, 100], at most two decimals. */
      readonly percent: number;
    }
  | { readonly kind: 'blackhole' };

/** What a node needs for its side of a fault. */
export type FaultNode = Pick<NodeState, 'name' | 'netns' | 'uplink' | 'uplinkIp' | 'podCidr'>;

/** One direction of a fault as found in a node: `node` drops (some of) what comes from `peer`. */
export interface ActiveFault {
  readonly node: string;
  readonly peer: string;
  /** `loss 15%` or `blackhole`: the rule's comment. */
  readonly description: string;
}

/** Why `percent` is not a loss percentage, or undefined. */
export function lossPercentProblem(percent: number): string | undefined {
  if (!Number.isFinite(percent) || percent <= 0 || percent > 100)
    return `loss must be more than 0 and at most 100 percent, got ${percent}`;
  if (Math.abs(percent * 100 - Math.round(percent * 100)) > 1e-9)
    return `loss percent takes at most two decimals, got ${percent}`;
  return undefined;
}

export function describeFault(fault: LinkFault): string {
  return fault.kind === 'loss' ? `loss ${fault.percent}%` : 'blackhole';
}

/** nft 1.0 takes chain names only unquoted: a letter, then letters, digits, `_` and `-` (`node-2` is). */
function chainName(peer: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(peer))
    throw new Error(`cannot name an nft chain after node ${JSON.stringify(peer)}`);
  return `from-${peer}`;
}

/** nft quotes a string with double quotes and has no escapes: names we put there must not hold one. */
function quoted(text: string): string {
  if (/["\n\\]/.test(text)) throw new Error(`cannot put ${JSON.stringify(text)} in an nft rule`);
  return `"${text}"`;
}

/**
 * The nft script that makes `self` drop what `fault` says of the packets arriving from `peer`, replacing
 * whatever fault that pair had. Pure.
 */
export function faultScript(self: FaultNode, peer: FaultNode, fault: LinkFault): string {
  const chain = chainName(peer.name);
  const table = `${FAMILY} ${FAULT_TABLE}`;
  const verdict =
    fault.kind === 'loss'
      ? `numgen random mod ${LOSS_SCALE} < ${Math.round(fault.percent * (LOSS_SCALE / 100))} drop`
      : 'drop';
  return [
    `add table ${table}`,
    `add chain ${table} ${chain} { type filter hook prerouting priority ${FAULT_PRIORITY}; policy accept; }`,
    `flush chain ${table} ${chain}`,
    `add rule ${table} ${chain} iifname ${quoted(self.uplink)} ip saddr { ${peer.uplinkIp}, ${peer.podCidr} } ${verdict} comment ${quoted(describeFault(fault))}`,
    '',
  ].join('\n');
}

/** Removes the fault `self` applies to what comes from `peer`, if any (adding first makes it idempotent). */
export function clearPairScript(peer: string): string {
  const chain = chainName(peer);
  const table = `${FAMILY} ${FAULT_TABLE}`;
  return [`add table ${table}`, `add chain ${table} ${chain}`, `delete chain ${table} ${chain}`, ''].join(
    '\n',
  );
}

/** Removes every fault of a node: our table, whatever it holds. */
export const CLEAR_SCRIPT = `add table ${FAMILY} ${FAULT_TABLE}\ndelete table ${FAMILY} ${FAULT_TABLE}\n`;

interface NftResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `nft ARGS` in `netns` (else here), `input` on stdin; never rejects (failures are in the result). */
function runNft(netns: string | undefined, args: readonly string[], input?: string): Promise<NftResult> {
  return new Promise((resolve) => {
    const [cmd, ...rest] =
      netns === undefined ? ['nft', ...args] : ['ip', 'netns', 'exec', netns, 'nft', ...args];
    const child = spawn(cmd!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${NFT_TIMEOUT_MS} ms)`;
      child.kill('SIGKILL');
    }, NFT_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined); // nft may exit before reading (no such namespace)
    child.stdin.end(input ?? '');
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}${err.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === null ? -1 : 128), stdout, stderr });
    });
  });
}

/** Runs nft for `node`; an error names the node, its namespace, the command and nft's stderr. */
async function nft(node: FaultNode, args: readonly string[], input?: string): Promise<string> {
  const r = await runNft(node.netns, args, input);
  if (r.code === 0) return r.stdout;
  const command = `ip netns exec ${node.netns} nft ${args.join(' ')}`;
  const stderr = r.stderr.trim();
  const hint = /exec of "nft" failed/.test(stderr)
    ? ' (nft is not installed: the Debian package nftables)'
    : /Cannot open network namespace/.test(stderr)
      ? ' (is the lab running? weft lab status)'
      : '';
  const script = input === undefined || input === '' ? '' : `\n--- script ---\n${input.trimEnd()}`;
  throw new Error(`${node.name}: ${command} failed (exit ${r.code})${hint}: ${stderr}${script}`);
}

/** Why nftables cannot be used here (nft missing, or no nf_tables in the kernel), or undefined. */
export async function nftUnavailable(): Promise<string | undefined> {
  const r = await runNft(undefined, ['list', 'tables']);
  if (r.code === 0) return undefined;
  return /ENOENT/.test(r.stderr)
    ? 'nft not found (the Debian package nftables)'
    : `nft list tables failed (exit ${r.code}): ${r.stderr.trim()}`;
}

/** The two nodes named by `between`, checked against the lab. */
export function faultPair(state: LabState, between: readonly string[]): readonly [NodeState, NodeState] {
  const names = state.nodes.map((n) => n.name);
  if (between.length !== 2)
    throw new Error(`a fault is between two nodes (one of ${names.join(', ')}), got ${between.join(',')}`);
  const [a, b] = between.map((name) => {
    const node = state.nodes.find((n) => n.name === name);
    if (node === undefined)
      throw new Error(`no node ${name} in lab ${state.id} (nodes: ${names.join(', ')})`);
    return node;
  }) as [NodeState, NodeState];
  if (a.name === b.name) throw new Error(`a fault is between two different nodes, got ${a.name} twice`);
  return [a, b];
}

/**
 * Applies `fault` to both directions of the link between the two nodes, replacing what that pair had.
 * When the second node fails, the first node's half is taken back before the error is thrown.
 */
export async function injectFault(
  state: LabState,
  between: readonly string[],
  fault: LinkFault,
): Promise<void> {
  if (fault.kind === 'loss') {
    const problem = lossPercentProblem(fault.percent);
    if (problem !== undefined) throw new Error(problem);
  }
  const [a, b] = faultPair(state, between);
  await nft(a, ['-f', '-'], faultScript(a, b, fault));
  try {
    await nft(b, ['-f', '-'], faultScript(b, a, fault));
  } catch (err) {
    await nft(a, ['-f', '-'], clearPairScript(b.name)).catch(() => undefined);
    throw err;
  }
}

/** Removes the faults between two nodes, or (no `between`) every fault of the lab. Idempotent. */
export async function clearFaults(state: LabState, between?: readonly string[]): Promise<void> {
  if (between !== undefined) {
    const [a, b] = faultPair(state, between);
    await nft(a, ['-f', '-'], clearPairScript(b.name));
    await nft(b, ['-f', '-'], clearPairScript(a.name));
    return;
  }
  const errors: string[] = [];
  for (const node of state.nodes)
    await nft(node, ['-f', '-'], CLEAR_SCRIPT).catch((err: unknown) => errors.push((err as Error).message));
  if (errors.length > 0) throw new Error(errors.join('\n'));
}

interface NftJsonRule {
  readonly rule?: { readonly chain?: string; readonly comment?: string };
}

/** The faults each node applies now, read back from nft. */
export async function listFaults(state: LabState): Promise<ActiveFault[]> {
  const found: ActiveFault[] = [];
  for (const node of state.nodes) {
    const r = await runNft(node.netns, ['-j', 'list', 'table', FAMILY, FAULT_TABLE]);
    // No table: no fault on this node. Anything else is an error.
    if (r.code !== 0 && /No such file or directory/.test(r.stderr)) continue;
    if (r.code !== 0)
      throw new Error(
        `${node.name}: ip netns exec ${node.netns} nft -j list table ${FAMILY} ${FAULT_TABLE} failed (exit ${r.code}): ${r.stderr.trim()}`,
      );
    const items = (JSON.parse(r.stdout) as { nftables?: NftJsonRule[] }).nftables ?? [];
    for (const item of items) {
      const chain = item.rule?.chain;
      if (chain === undefined || !chain.startsWith('from-')) continue;
      found.push({
        node: node.name,
        peer: chain.slice('from-'.length),
        description: item.rule?.comment ?? '?',
      });
    }
  }
  return found;
}
