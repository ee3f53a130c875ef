// The README's main job: `weft demo` from the build, as a user runs it. Real processes, real TLS.
import t from 'tap';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from '../helpers/exec.js';

const cli = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

t.test(
  'weft demo issues and shows identities, and shows a refusal',
  { skip: existsSync(cli) ? false : `no build at ${cli}: run npm run build` },
  async (t) => {
    const r = await run(process.execPath, [cli, 'demo']);
    t.equal(r.code, 0, `exit code (stderr: ${r.stderr})`);
    t.match(r.stdout, /spiffe:\/\/cluster.local\/ns\/shop\/sa\/web\n/);
    t.match(r.stdout, /spiffe:\/\/cluster.local\/ns\/shop\/sa\/checkout\n/);
    t.notMatch(r.stdout, /sa\/batch/, 'the pod of a namespace that is not enrolled gets no identity');
    t.match(r.stdout, /URI:spiffe:\/\/cluster.local\/ns\/shop\/sa\/web/, 'OpenSSL shows the URI SAN');
    t.match(r.stdout, /TLS Web Server Authentication, TLS Web Client Authentication/);
    t.match(r.stdout, /web.pem: OK/, 'openssl verify passes');
    t.match(
      r.stdout,
      /refused as it should be: .*PERMISSION_DENIED: node node-1 runs no pod with service account db/,
    );
    t.match(r.stdout, /demo complete/);
  },
);

t.test(
  'weft with no command prints usage and exits 2',
  { skip: existsSync(cli) ? false : 'no build' },
  async (t) => {
    const r = await run(process.execPath, [cli]);
    t.equal(r.code, 2);
    t.match(r.stdout, /weft ca serve/);
    const usage = await run(process.execPath, [cli, 'ca', 'serve', '--listen', '127.0.0.1:0']);
    t.equal(usage.code, 2, 'a missing flag is a usage error');
    t.match(usage.stderr, /--config is required/);
    const bad = await run(process.execPath, [
      cli,
      'ca',
      'serve',
      '--config',
      'file:/nonexistent/weft',
      '--listen',
      '127.0.0.1:0',
    ]);
    t.equal(bad.code, 1, 'an unusable config source is an error');
    t.match(bad.stderr, /\/nonexistent\/weft/, 'naming the folder');
  },
);
