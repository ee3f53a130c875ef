// The CA authorizes from the live config model: a pod moving to another node moves the right to its
// identity with it, as soon as the manifest folder changes.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigStore } from '../../core/store.js';
import { createConfigSource } from '../../core/sources/index.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { opensslCsr, spiffeSanExt } from '../helpers/openssl.js';
import { rawCreateCertificate, removeDir, startTestCa } from '../helpers/ca.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';

function podOn(node: string, phase = 'Running'): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, uid: u-web-0 }
spec: { serviceAccountName: web, nodeName: ${node} }
status: { phase: ${phase}, podIP: 10.244.1.10 }
`;
}

t.test('authorization follows pods as the manifests change', async (t) => {
  const manifests = mkdtempSync(join(tmpdir(), 'weft-manifests-'));
  t.teardown(() => removeDir(manifests));
  writeFileSync(join(manifests, 'web.yaml'), podOn('node-1'));
  const store = new ConfigStore();
  const source = createConfigSource(`file:${manifests}`);
  await source.start(store);
  t.teardown(() => source.stop());

  const ca = await startTestCa({ placement: store });
  t.teardown(async () => {
    await ca.close();
    removeDir(ca.stateDir);
  });
  const tokens = join(ca.stateDir, NODE_TOKENS_FILE);
  const node1 = createNodeToken(tokens, 'node-1');
  const node2 = createNodeToken(tokens, 'node-2');
  const csr = (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem;
  const ask = (token: string) =>
    rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, { token, csr, identity: WEB });

  t.equal((await ask(node1)).code, grpc.status.OK, 'node-1 runs web: allowed');
  t.equal((await ask(node2)).code, grpc.status.PERMISSION_DENIED, 'node-2 does not: refused');

  let next = store.whenVersion(store.version + 1);
  writeFileSync(join(manifests, 'web.yaml'), podOn('node-2'));
  await next;
  t.equal((await ask(node1)).code, grpc.status.PERMISSION_DENIED, 'after the move node-1 is refused');
  t.equal((await ask(node2)).code, grpc.status.OK, 'and node-2 is allowed');

  next = store.whenVersion(store.version + 1);
  writeFileSync(join(manifests, 'web.yaml'), podOn('node-2', 'Succeeded'));
  await next;
  t.equal((await ask(node2)).code, grpc.status.PERMISSION_DENIED, 'a finished pod grants nothing');
});
