// Which lab a `weft` command means. Its own module: `weft lab`'s subcommand modules need it, and
// importing it from ./lab.ts (which imports them) would make a cycle.
import { resolve } from 'node:path';
import { DEFAULT_LAB_DIR } from '../lab/cluster/plan.js';
import { stringFlag } from './flags.js';

/** `--dir`, else $WEFT_LAB_DIR, else .weft/lab: the same lab for every command run from one place. */
export function labDirFlag(values: Record<string, unknown>): string {
  return resolve(stringFlag(values, 'dir', process.env.WEFT_LAB_DIR || DEFAULT_LAB_DIR));
}
