// An independent gRPC client (Python grpcio, stubs generated from Istio's proto by grpc_tools) obtains
// a certificate from the CA, and Python's `cryptography` parses and verifies it.
import t from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { missingPython, run, skipReason, SYSTEM_PYTHON } from '../helpers/exec.js';
import { writeTempFiles } from '../helpers/openssl.js';
import { removeDir, startTestCa, StaticPlacement } from '../helpers/ca.js';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const protoDir = fileURLToPath(new URL('../../core/proto', import.meta.url));
const script = fileURLToPath(new URL('./python/istio_ca_client.py', import.meta.url));

const missing = await missingPython(['grpc', 'grpc_tools', 'cryptography']);

t.test('Python grpcio obtains an SVID', { skip: skipReason(t, missing) }, async (t) => {
  const generated = mkdtempSync(join(tmpdir(), 'weft-pyproto-'));
  t.teardown(() => removeDir(generated));
  const wkt = (
    await run(SYSTEM_PYTHON, [
      '-c',
      'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))',
    ])
  ).stdout.trim();
  const protoc = await run(SYSTEM_PYTHON, [
    '-m',
    'grpc_tools.protoc',
    `-I${protoDir}`,
    `-I${wkt}`,
    `--python_out=${generated}`,
    `--grpc_python_out=${generated}`,
    join(protoDir, 'ca.proto'),
  ]);
  t.equal(protoc.code, 0, `grpc_tools.protoc: ${protoc.stderr}`);

  const ca = await startTestCa({ placement: new StaticPlacement({ 'node-1': ['default/web'] }) });
  t.teardown(async () => {
    await ca.close();
    removeDir(ca.stateDir);
  });
  const token = createNodeToken(join(ca.stateDir, NODE_TOKENS_FILE), 'node-1');
  const files = writeTempFiles({ 'root.pem': ca.authority.rootsPem });
  t.teardown(() => removeDir(files.dir));

  const r = await run(SYSTEM_PYTHON, [
    script,
    generated,
    `127.0.0.1:${ca.grpcAddress.port}`,
    files.paths['root.pem']!,
    token,
    WEB,
  ]);
  t.equal(r.code, 0, `python client: ${r.stderr}`);
  const seen = JSON.parse(r.stdout) as Record<string, unknown>;
  t.same(seen, {
    chain_length: 2,
    uris: [WEB],
    dns: [],
    san_critical: true,
    subject: '',
    server_auth: true,
    client_auth: true,
    digital_signature: true,
    key_encipherment: true,
    same_key: true,
    lifetime_s: 3600 + 120,
    verified_by_root: true,
  });
});
