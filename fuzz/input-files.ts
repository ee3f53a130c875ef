// The committed inputs of each target: `corpus/<target>/` (seed inputs, valid and interesting ones, that
// mutations start from) and `regressions/<target>/` (every input that once made a target fail). Both are
// replayed as fixed tests. A regression whose fix has not landed yet is named `open-…`: it is replayed
// as a known failure (tap `todo`) until the fix lands and the prefix is dropped.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EncodedInput } from './fuzz-target.js';

export type InputFolder = 'corpus' | 'regressions';

export interface InputFile {
  readonly name: string;
  readonly path: string;
  readonly bytes: Buffer;
  /** A regression whose fix has not landed (`open-` prefix). */
  readonly open: boolean;
}

const FUZZ_DIR = fileURLToPath(new URL('.', import.meta.url));
const OPEN_PREFIX = 'open-';

export function inputFolder(target: string, folder: InputFolder): string {
  return join(FUZZ_DIR, folder, target);
}

/** The folder's files in name order; dot-files and READMEs are not inputs. */
export function inputFiles(target: string, folder: InputFolder): InputFile[] {
  const dir = inputFolder(target, folder);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => !name.startsWith('.') && !name.endsWith('.md'))
    .sort()
    .map((name) => {
      const path = join(dir, name);
      return { name, path, bytes: readFileSync(path), open: name.startsWith(OPEN_PREFIX) };
    });
}

/**
 * Writes a failing input to `regressions/<target>/open-<hash><ext>` (named by content, so finding it
 * again does not add a copy) and returns the path.
 */
export function saveRegression(target: string, input: EncodedInput): string {
  const dir = inputFolder(target, 'regressions');
  mkdirSync(dir, { recursive: true });
  const hash = createHash('sha256').update(input.bytes).digest('hex').slice(0, 16);
  const path = join(dir, `${OPEN_PREFIX}${hash}${input.extension}`);
  writeFileSync(path, input.bytes);
  return path;
}
