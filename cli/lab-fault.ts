// `weft lab fault loss|blackhole|clear|list`: network faults between two nodes of a running lab
// (lab/cluster/faults.ts does the nftables work).
import { labDirFlag } from './lab-dir.js';
import {
  clearFaults,
  describeFault,
  injectFault,
  listFaults,
  lossPercentProblem,
  type LinkFault,
} from '../lab/cluster/faults.js';
import { readLabState, type LabState } from '../lab/cluster/state.js';
import { listFlag, parseFlags, stringFlag, UsageError, type FlagSpec } from './flags.js';

export const LAB_FAULT_USAGE = `weft lab fault loss --percent N --between NODE,NODE [--dir DIR]
               drops N % (0-100, two decimals) of the packets each way on the link between two nodes
weft lab fault blackhole --between NODE,NODE [--dir DIR]   drops everything between two nodes
weft lab fault clear [--between NODE,NODE] [--dir DIR]   removes the faults (of one pair, or all)
weft lab fault list [--dir DIR]   the faults in place, per node and direction
               (nftables table inet weft_fault in the node namespaces; weft lab down removes it with them)`;

const DIR_FLAG: FlagSpec = { dir: { type: 'string' } };
const BETWEEN_FLAG: FlagSpec = { between: { type: 'string' } };

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('lab faults need root (nftables in the node namespaces)');
}

function labState(values: Record<string, unknown>): LabState {
  const dir = labDirFlag(values);
  const state = readLabState(dir);
  if (state === undefined) throw new Error(`no lab in ${dir}`);
  return state;
}

function betweenFlag(values: Record<string, unknown>): string[] {
  const nodes = listFlag(values, 'between', []);
  if (nodes.length !== 2)
    throw new UsageError(`--between: expected two nodes like node-1,node-2\n\n${LAB_FAULT_USAGE}`);
  return nodes;
}

function percentFlag(values: Record<string, unknown>): number {
  const text = stringFlag(values, 'percent');
  const percent = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  const problem = lossPercentProblem(percent);
  if (problem !== undefined)
    throw new UsageError(`--percent: ${Number.isNaN(percent) ? `expected a number, got ${text}` : problem}`);
  return percent;
}

async function inject(argv: string[], kind: LinkFault['kind']): Promise<void> {
  const f = parseFlags(argv, {
    ...DIR_FLAG,
    ...BETWEEN_FLAG,
    ...(kind === 'loss' && { percent: { type: 'string' } }),
  });
  const between = betweenFlag(f);
  const fault: LinkFault = kind === 'loss' ? { kind, percent: percentFlag(f) } : { kind };
  requireRoot();
  await injectFault(labState(f), between, fault);
  process.stdout.write(`${between.join(' <-> ')}: ${describeFault(fault)} each way\n`);
}

async function clear(argv: string[]): Promise<void> {
  const f = parseFlags(argv, { ...DIR_FLAG, ...BETWEEN_FLAG });
  const between = f.between === undefined ? undefined : betweenFlag(f);
  requireRoot();
  await clearFaults(labState(f), between);
  process.stdout.write(
    `${between === undefined ? 'all faults' : `faults between ${between.join(' and ')}`} cleared\n`,
  );
}

async function list(argv: string[]): Promise<void> {
  const f = parseFlags(argv, DIR_FLAG);
  requireRoot();
  const faults = await listFaults(labState(f));
  if (faults.length === 0) return void process.stdout.write('no faults\n');
  for (const x of faults) process.stdout.write(`${x.node} drops from ${x.peer}: ${x.description}\n`);
}

/** `weft lab fault …` (argv after `fault`); errors are thrown (UsageError for bad arguments). */
export async function labFaultCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'loss':
    case 'blackhole':
      return inject(rest, sub);
    case 'clear':
      return clear(rest);
    case 'list':
      return list(rest);
    default:
      throw new UsageError(LAB_FAULT_USAGE);
  }
}
