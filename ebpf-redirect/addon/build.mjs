// Builds the weft_ebpf addon with node-gyp. Run by the root package's `install` script (so `npm ci`
// builds it) and by `npm run build:addon`. Linux only: elsewhere it says so and succeeds, and
// native.ts reports the addon as unavailable. A failed build fails the install, naming the packages.
//
// node-gyp comes from npm itself (npm exports npm_config_node_gyp to scripts), so it is not a
// dependency. Node's headers are taken from this Node's own prefix when it has them (Debian's
// /usr/include/node), so nothing is downloaded.
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

if (process.platform !== 'linux') {
  console.log(`weft_ebpf: skipped on ${process.platform} (the capture addon is Linux-only)`);
  process.exit(0);
}

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(
      dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  return candidates.find((c) => c && existsSync(c));
}

const gyp = nodeGyp();
const prefix = join(dirname(process.execPath), '..');
const nodedir =
  process.env.npm_config_nodedir ||
  (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
const args = ['rebuild', ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const result = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { cwd: here, stdio: 'inherit' })
  : spawnSync('node-gyp', args, { cwd: here, stdio: 'inherit' });

if (result.status !== 0) {
  console.error(
    '\nweft_ebpf: building the native addon failed. It needs a C compiler, make, python3, Node headers and\n' +
      '  apt-get install -y libbpf-dev libelf-dev zlib1g-dev\n' +
      `(${result.error ? result.error.message : `node-gyp exited with ${result.status}`})`,
  );
  process.exit(1);
}
