// The committed BPF object is what its source builds to. With the same compiler as the one recorded in
// capture.bpf.o.toolchain the rebuild must be byte-identical; with another clang only the programs and
// maps (symbols and sections) are compared. Needs clang and llvm-strip; skips without them (installing
// Weft never needs clang, so this skips under CI too when they are absent).
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh } from './capture-lab.js';

const BPF_DIR = fileURLToPath(new URL('../../ebpf-redirect/bpf/', import.meta.url));
const COMMITTED = join(BPF_DIR, 'capture.bpf.o');

async function missingTool(): Promise<string | undefined> {
  for (const tool of ['clang', 'llvm-strip', 'llvm-nm']) {
    try {
      await sh(tool, '--version');
    } catch {
      return `${tool} is not installed (only needed to rebuild the BPF object)`;
    }
  }
  return undefined;
}

const skip = (await missingTool()) ?? false;

/** Program sections and global symbols (maps, programs, the layout version), sorted. */
async function shape(object: string): Promise<string> {
  const symbols = await sh('llvm-nm', '--defined-only', '--extern-only', object);
  const sections = await sh('llvm-objdump', '-h', object);
  const names = sections
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[1])
    .filter((n): n is string => !!n && /^(tc|sk_lookup|\.maps|license|\.rodata)$/.test(n));
  return [
    ...symbols
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' ').slice(1).join(' ')),
    ...names,
  ]
    .sort()
    .join('\n');
}

t.test('capture.bpf.o matches capture.bpf.c', { skip }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'weft-bpf-build-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  await sh('bash', join(BPF_DIR, 'build.sh'), out);
  const toolchain = readFileSync(join(out, 'capture.bpf.o.toolchain'), 'utf8');
  const committedToolchain = readFileSync(join(BPF_DIR, 'capture.bpf.o.toolchain'), 'utf8');
  const rebuilt = readFileSync(join(out, 'capture.bpf.o'));
  if (toolchain === committedToolchain) {
    t.ok(
      rebuilt.equals(readFileSync(COMMITTED)),
      `byte-identical rebuild with ${toolchain.trim()} (else run bpf/build.sh)`,
    );
  } else {
    t.comment(
      `committed with ${committedToolchain.trim()}, rebuilt with ${toolchain.trim()}: comparing shape only`,
    );
    t.equal(
      await shape(join(out, 'capture.bpf.o')),
      await shape(COMMITTED),
      'same programs, maps and symbols',
    );
  }
});
