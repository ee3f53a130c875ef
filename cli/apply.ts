// `weft apply -f FILE` and `weft label namespace NS key=value|key-`: edits of the active source (the
// running lab's manifest folder, or --config file:DIR).
import { readFileSync } from 'node:fs';
import { activeSource, applyManifests, labelNamespace, parseLabelChange } from '../lab/cluster/apply.js';
import { labDirFlag } from './lab-dir.js';
import { parseFlagsAndArgs, UsageError, type FlagSpec } from './flags.js';

export const APPLY_USAGE = `weft apply -f FILE [-f FILE…] [--dir DIR | --config file:DIR]
               checks every object (core/convert, then the lab's nodes and CIDRs) and, only if all pass,
               writes them into the active source: the lab in DIR (default $WEFT_LAB_DIR or .weft/lab)
weft label namespace NS key=value… key-… [--dir DIR | --config file:DIR]`;

const SOURCE_FLAGS: FlagSpec = { dir: { type: 'string' }, config: { type: 'string' } };

function sourceOf(values: Record<string, unknown>) {
  return activeSource(typeof values.config === 'string' ? values.config : undefined, labDirFlag(values));
}

export function applyCommand(argv: string[]): number {
  const { values, positionals } = parseFlagsAndArgs(argv, {
    ...SOURCE_FLAGS,
    filename: { type: 'string', short: 'f', multiple: true },
  });
  const files = (values.filename as string[] | undefined) ?? [];
  if (files.length === 0 || positionals.length > 0) throw new UsageError(APPLY_USAGE);
  const source = sourceOf(values);
  const inputs = files.map((name) => ({ name, text: readFileSync(name === '-' ? 0 : name, 'utf8') }));
  const result = applyManifests(source, inputs);
  for (const w of result.warnings) process.stderr.write(`weft: warning: ${w}\n`);
  if (result.rejections.length > 0) {
    process.stderr.write(`weft: nothing applied; ${result.rejections.length} object(s) rejected:\n`);
    for (const r of result.rejections) process.stderr.write(`  ${r}\n`);
    return 1;
  }
  for (const c of result.changes) process.stdout.write(`${c.object} ${c.action}\n`);
  return 0;
}

export function labelCommand(argv: string[]): number {
  const { values, positionals } = parseFlagsAndArgs(argv, SOURCE_FLAGS);
  const [kind, name, ...labels] = positionals;
  if (kind !== 'namespace' && kind !== 'ns')
    throw new UsageError(`weft label: only namespaces can be labelled\n\n${APPLY_USAGE}`);
  if (name === undefined || labels.length === 0) throw new UsageError(APPLY_USAGE);
  let changes;
  try {
    changes = labels.map(parseLabelChange);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const result = labelNamespace(sourceOf(values), name, changes);
  const shown =
    Object.entries(result.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '(no labels)';
  process.stdout.write(`Namespace ${name} ${result.action} (${shown}) in ${result.file}\n`);
  return 0;
}
