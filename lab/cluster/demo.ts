// The demo's manifests: ordinary YAML files in lab/demo/, copied into a lab's manifest folder by
// `weft lab up --demo`. They are read from the source tree, beside the build (dist/ sits next to lab/).
import { copyFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** lab/demo/ of this checkout, whether this module runs from its TypeScript source or from dist/. */
export function demoManifestsDir(): string {
  const fromSource = import.meta.url.endsWith('.ts');
  return fileURLToPath(new URL(fromSource ? '../demo/' : '../../../lab/demo/', import.meta.url));
}

/** Copies the demo manifests into `manifestsDir`; returns the file names. */
export function copyDemoManifests(manifestsDir: string): string[] {
  const dir = demoManifestsDir();
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  for (const f of files) copyFileSync(join(dir, f), join(manifestsDir, f));
  return files;
}
