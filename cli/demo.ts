// `weft demo`
import { runDemo } from '../lab/demo.js';
import { parseFlags } from './flags.js';

export const DEMO_USAGE = `weft demo [--keep] [--dir DIR]   CA + node agent on loopback, issuing and showing identities`;

export async function demoCommand(argv: string[]): Promise<number> {
  const f = parseFlags(argv, { keep: { type: 'boolean' }, dir: { type: 'string' } });
  return runDemo({
    keep: f.keep === true,
    dir: typeof f.dir === 'string' ? f.dir : undefined,
    out: (line) => process.stdout.write(`${line}\n`),
  });
}
