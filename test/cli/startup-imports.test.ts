// What `weft agent` and `weft waypoint` load before they serve: a crashed agent is back when its modules
// are loaded, so heavy packages that only some configurations use must not be in their static import
// graph. @kubernetes/client-node alone is ~800 files and ~300 ms of a start (the `kubernetes` config
// source loads it when it starts). The graph is read from the sources: every `import … from` and
// `export … from` that is not type-only, followed through relative paths.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const STATIC_IMPORT = /^(import|export)\s+(?!type\b)[^;]*?\bfrom\s+'([^']+)'|^import\s+'([^']+)'/gm;

/** For each package reached from the entries, one chain of modules that reaches it. */
function packagesReached(entries: readonly string[]): Map<string, string[]> {
  const reached = new Map<string, string[]>();
  const seen = new Set<string>();
  const queue: string[][] = entries.map((e) => [join(ROOT, e)]);
  while (queue.length > 0) {
    const chain = queue.shift()!;
    const file = chain[chain.length - 1]!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      const spec = m[2] ?? m[3]!;
      if (spec.startsWith('.')) {
        const next = join(dirname(file), spec).replace(/\.js$/, '.ts');
        if (existsSync(next)) queue.push([...chain, next]);
      } else if (!spec.startsWith('node:') && !reached.has(spec)) {
        reached.set(
          spec,
          chain.map((f) => relative(ROOT, f)),
        );
      }
    }
  }
  return reached;
}

const NOT_AT_START = ['@kubernetes/client-node'];

// Each command's module and what it imports dynamically as it runs (the waypoint command loads
// proxy/main.ts when it starts one); a package reached from them loads at every start.
const COMMANDS = [
  { name: 'weft agent', entries: ['cli/agent.ts'], uses: '@grpc/grpc-js' },
  { name: 'weft waypoint', entries: ['cli/waypoint.ts', 'proxy/main.ts'], uses: 'undici' },
] as const;

for (const command of COMMANDS)
  t.test(`${command.name} does not load ${NOT_AT_START.join(', ')} at start`, async (t) => {
    const reached = packagesReached(command.entries);
    t.ok(reached.has(command.uses), `the walk follows imports (it reaches ${command.uses})`);
    for (const pkg of NOT_AT_START)
      t.notOk(
        reached.has(pkg),
        `${pkg} not imported${reached.has(pkg) ? `: ${reached.get(pkg)!.join(' → ')}` : ''}`,
      );
  });
