// The signing authority: a plugged-in intermediate (made by OpenSSL) signs chains that OpenSSL verifies;
// broken plug-in material is refused with the file named.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSigningAuthority, PLUGIN_FILES } from '../../ca/authority.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { run } from '../helpers/exec.js';
import { opensslCsr, spiffeSanExt, writeTempFiles } from '../helpers/openssl.js';
import { rawCreateCertificate, removeDir, startTestCa, StaticPlacement } from '../helpers/ca.js';

const WEB = 'spiffe://example.org/ns/default/sa/web';

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** An OpenSSL-made root (RSA 3072) and intermediate (P-256) in Istio's cacerts layout. */
async function makePluginDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-plugin-'));
  const p = (f: string) => join(dir, f);
  writeFileSync(
    p('ca.ext'),
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
  );
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:3072',
    '-nodes',
    '-keyout',
    p('root-key.pem'),
    '-out',
    p('root-cert.pem'),
    '-days',
    '30',
    '-subj',
    '/O=example.org/CN=Plugged Root',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await openssl([
    'req',
    '-new',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    p('ca-key.pem'),
    '-out',
    p('ca.csr'),
    '-subj',
    '/O=example.org/CN=Plugged Intermediate',
  ]);
  await openssl([
    'x509',
    '-req',
    '-in',
    p('ca.csr'),
    '-CA',
    p('root-cert.pem'),
    '-CAkey',
    p('root-key.pem'),
    '-CAcreateserial',
    '-days',
    '20',
    '-extfile',
    p('ca.ext'),
    '-out',
    p('ca-cert.pem'),
  ]);
  await openssl(['x509', '-in', p('ca-cert.pem'), '-out', p('cert-chain.pem')]);
  return dir;
}

t.test('a plugged-in intermediate issues chains that OpenSSL verifies to the plugged root', async (t) => {
  const plugin = await makePluginDir();
  t.teardown(() => removeDir(plugin));
  const ca = await startTestCa({
    pluginDir: plugin,
    trustDomain: 'example.org',
    placement: new StaticPlacement({ n1: ['default/web'] }),
  });
  t.teardown(async () => {
    await ca.close();
    removeDir(ca.stateDir);
  });
  t.equal(ca.authority.origin, 'plugin');
  t.match(ca.authority.cert.subject, /Plugged Intermediate/);
  const token = createNodeToken(join(ca.stateDir, NODE_TOKENS_FILE), 'n1');
  const csr = (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem;
  const res = await rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, {
    token,
    csr,
    identity: WEB,
  });
  t.equal(res.code, grpc.status.OK, res.details);
  t.equal(res.chain.length, 3, 'leaf, intermediate, root');
  const files = writeTempFiles({
    'leaf.pem': res.chain[0]!,
    'inter.pem': res.chain[1]!,
    'root.pem': res.chain[2]!,
  });
  t.teardown(() => removeDir(files.dir));
  const v = await run('openssl', [
    'verify',
    '-CAfile',
    files.paths['root.pem']!,
    '-untrusted',
    files.paths['inter.pem']!,
    files.paths['leaf.pem']!,
  ]);
  t.equal(v.code, 0, `openssl verify through the intermediate: ${v.stdout}${v.stderr}`);
  const noInter = await run('openssl', [
    'verify',
    '-CAfile',
    files.paths['root.pem']!,
    files.paths['leaf.pem']!,
  ]);
  t.not(noInter.code, 0, 'without the intermediate the leaf does not verify (the chain matters)');
});

t.test('broken plug-in material is refused, naming the file', async (t) => {
  const plugin = await makePluginDir();
  t.teardown(() => removeDir(plugin));
  const other = await makePluginDir();
  t.teardown(() => removeDir(other));

  copyFileSync(join(other, PLUGIN_FILES.key), join(plugin, PLUGIN_FILES.key));
  await t.rejects(loadSigningAuthority({ stateDir: plugin, pluginDir: plugin, trustDomain: 'example.org' }), {
    message: new RegExp(`${PLUGIN_FILES.key}: does not match ${PLUGIN_FILES.cert}`),
  });

  copyFileSync(join(other, PLUGIN_FILES.key), join(plugin, PLUGIN_FILES.key));
  copyFileSync(join(other, PLUGIN_FILES.cert), join(plugin, PLUGIN_FILES.cert));
  copyFileSync(join(other, PLUGIN_FILES.cert), join(plugin, PLUGIN_FILES.chain));
  await t.rejects(loadSigningAuthority({ stateDir: plugin, pluginDir: plugin, trustDomain: 'example.org' }), {
    message: /cert-chain.pem: the chain from .* does not verify up to root-cert.pem/,
  });

  writeFileSync(join(plugin, PLUGIN_FILES.cert), 'not a certificate');
  await t.rejects(loadSigningAuthority({ stateDir: plugin, pluginDir: plugin, trustDomain: 'example.org' }), {
    message: /ca-cert.pem: holds no PEM certificate/,
  });
});

t.test('a generated root whose key went missing is not silently replaced', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  t.teardown(() => removeDir(dir));
  const first = await loadSigningAuthority({ stateDir: dir, trustDomain: 'cluster.local' });
  t.equal(first.origin, 'generated');
  removeDir(join(dir, 'root-key.pem'));
  await t.rejects(loadSigningAuthority({ stateDir: dir, trustDomain: 'cluster.local' }), {
    message: /root-key.pem: is missing while its pair exists/,
  });
});

t.test('the generated root refuses unsafe state: a group-writable dir, a readable key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  t.teardown(() => removeDir(dir));
  chmodSync(dir, 0o775);
  await t.rejects(loadSigningAuthority({ stateDir: dir, trustDomain: 'cluster.local' }), {
    message: /is writable by group or others \(mode 775\)/,
  });
  chmodSync(dir, 0o700);
  await loadSigningAuthority({ stateDir: dir, trustDomain: 'cluster.local' });
  t.equal(statSync(join(dir, 'root-key.pem')).mode & 0o777, 0o600, 'key written 0600');
  t.same(readdirSync(dir).sort(), ['root-cert.pem', 'root-key.pem'], 'no temporary files left');
  chmodSync(join(dir, 'root-key.pem'), 0o644);
  await t.rejects(loadSigningAuthority({ stateDir: dir, trustDomain: 'cluster.local' }), {
    message: /root-key.pem: has mode 644/,
  });
});
