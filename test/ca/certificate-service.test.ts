// The CA end to end: real gRPC over TLS on loopback, CSRs from OpenSSL, certificates checked by OpenSSL.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { createNodeToken, NODE_TOKENS_FILE } from '../../ca/node-tokens.js';
import { run } from '../helpers/exec.js';
import { withSecondExtensionRequest, withSecondExtensionValue } from '../helpers/craft-csr.js';
import { opensslCsr, spiffeSanExt, writeTempFiles } from '../helpers/openssl.js';
import {
  expectRefusals,
  rawCreateCertificate,
  removeDir,
  startTestCa,
  StaticPlacement,
  type RefusalCase,
} from '../helpers/ca.js';

const WEB = 'spiffe://cluster.local/ns/default/sa/web';
const DB = 'spiffe://cluster.local/ns/default/sa/db';
const placement = new StaticPlacement({ 'node-1': ['default/web'], 'node-2': ['default/db'] });

t.test('issues an X.509-SVID that OpenSSL verifies and reads as the SPIFFE profile', async (t) => {
  const ca = await startTestCa({ placement });
  t.teardown(async () => {
    await ca.close();
    removeDir(ca.stateDir);
  });
  const token = createNodeToken(join(ca.stateDir, NODE_TOKENS_FILE), 'node-1');
  const { csrPem } = await opensslCsr({ extensions: [spiffeSanExt(WEB)] });
  const res = await rawCreateCertificate(ca.grpcAddress, ca.authority.rootsPem, {
    token,
    csr: csrPem,
    identity: WEB,
  });
  t.equal(res.code, grpc.status.OK, res.details);
  t.equal(res.chain.length, 2, 'leaf then root bundle');
  t.equal(res.chain.at(-1), ca.authority.rootsPem, 'last element is the root bundle');

  const files = writeTempFiles({ 'leaf.pem': res.chain[0]!, 'bundle.pem': res.chain.at(-1)! });
  t.teardown(() => removeDir(files.dir));
  const verify = await run('openssl', [
    'verify',
    '-CAfile',
    files.paths['bundle.pem']!,
    files.paths['leaf.pem']!,
  ]);
  t.equal(verify.code, 0, `openssl verify: ${verify.stdout}${verify.stderr}`);
  t.match(verify.stdout, /: OK/);
  const verifyPurpose = await run('openssl', [
    'verify',
    '-purpose',
    'sslclient',
    '-CAfile',
    files.paths['bundle.pem']!,
    files.paths['leaf.pem']!,
  ]);
  t.equal(verifyPurpose.code, 0, 'valid for TLS client auth');

  const text = (await run('openssl', ['x509', '-in', files.paths['leaf.pem']!, '-noout', '-text'])).stdout;
  const uris = text.match(/URI:[^\s,]+/g) ?? [];
  t.same(uris, [`URI:${WEB}`], 'exactly one URI SAN, the SPIFFE ID');
  t.notMatch(text, /DNS:|IP Address:|email:/, 'no other SAN types');
  t.match(text, /X509v3 Subject Alternative Name: critical/, 'SAN is critical (empty subject)');
  t.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/, 'both EKUs');
  t.match(text, /Digital Signature, Key Encipherment/, 'key usage');
  t.match(text, /Signature Algorithm: ecdsa-with-SHA256/, 'ECDSA with SHA-256');
  t.match(text, /Subject: *\n/, 'empty subject');

  const notBefore = new Date(
    (await run('openssl', ['x509', '-in', files.paths['leaf.pem']!, '-noout', '-startdate'])).stdout.split(
      '=',
    )[1]!,
  );
  const notAfter = new Date(
    (await run('openssl', ['x509', '-in', files.paths['leaf.pem']!, '-noout', '-enddate'])).stdout.split(
      '=',
    )[1]!,
  );
  const backdateS = (Date.now() - notBefore.getTime()) / 1000;
  t.ok(backdateS >= 110 && backdateS <= 140, `NotBefore backdated ~2 min (${backdateS}s)`);
  const lifetimeH = (notAfter.getTime() - Date.now()) / 3600_000;
  t.ok(lifetimeH > 23.9 && lifetimeH <= 24, `24 h by default (${lifetimeH.toFixed(3)} h)`);

  const bundle = await fetch(`http://127.0.0.1:${ca.httpAddress!.port}/trust-bundle`);
  t.equal(await bundle.text(), ca.authority.rootsPem, 'trust bundle served over HTTP');
});

t.test('refuses with a clear status and keeps serving', async (t) => {
  const ca = await startTestCa({ placement });
  t.teardown(async () => {
    await ca.close();
    removeDir(ca.stateDir);
  });
  const token = createNodeToken(join(ca.stateDir, NODE_TOKENS_FILE), 'node-1');
  const root = ca.authority.rootsPem;
  const webCsr = await opensslCsr({ extensions: [spiffeSanExt(WEB)] });
  const good = webCsr.csrPem;
  const call = (c: Parameters<typeof rawCreateCertificate>[2]) =>
    rawCreateCertificate(ca.grpcAddress, root, c);

  const cases: RefusalCase[] = [
    {
      name: 'service account with no pod on the caller node',
      call: { token, identity: DB, csr: (await opensslCsr({ extensions: [spiffeSanExt(DB)] })).csrPem },
      code: grpc.status.PERMISSION_DENIED,
      details: /node node-1 runs no pod with service account db in namespace default/,
    },
    {
      name: 'CSR with another SAN',
      call: { token, identity: WEB, csr: (await opensslCsr({ extensions: [spiffeSanExt(DB)] })).csrPem },
      code: grpc.status.PERMISSION_DENIED,
      details: /may ask only for URI spiffe:\/\/cluster.local\/ns\/default\/sa\/web/,
    },
    {
      name: 'CSR with an extra SAN',
      call: {
        token,
        identity: WEB,
        csr: (await opensslCsr({ extensions: [`subjectAltName=critical,URI:${WEB},DNS:evil.example`] }))
          .csrPem,
      },
      code: grpc.status.PERMISSION_DENIED,
      details: /DNS:evil.example/,
    },
    {
      name: 'CSR asking CA:true',
      call: {
        token,
        identity: WEB,
        csr: (await opensslCsr({ extensions: [spiffeSanExt(WEB), 'basicConstraints=critical,CA:TRUE'] }))
          .csrPem,
      },
      code: grpc.status.INVALID_ARGUMENT,
      details: /CA:TRUE/,
    },
    {
      name: 'weak RSA key',
      call: {
        token,
        identity: WEB,
        csr: (await opensslCsr({ key: 'rsa:1024', extensions: [spiffeSanExt(WEB)] })).csrPem,
      },
      code: grpc.status.INVALID_ARGUMENT,
      details: /RSA key of 1024 bits/,
    },
    {
      name: 'a second extensionRequest attribute asking CA:true',
      call: { token, identity: WEB, csr: withSecondExtensionRequest(webCsr) },
      code: grpc.status.INVALID_ARGUMENT,
      details: /exactly one extensionRequest/,
    },
    {
      name: 'a second extensionRequest value asking CA:true',
      call: { token, identity: WEB, csr: withSecondExtensionValue(webCsr) },
      code: grpc.status.INVALID_ARGUMENT,
      details: /exactly one extensionRequest/,
    },
    {
      name: 'an otherName SAN beside the URI',
      call: {
        token,
        identity: WEB,
        csr: (
          await opensslCsr({ extensions: [`subjectAltName=critical,URI:${WEB},otherName:1.2.3.4;UTF8:x`] })
        ).csrPem,
      },
      code: grpc.status.PERMISSION_DENIED,
      details: /otherName:1.2.3.4/,
    },
    {
      name: 'a malformed basicConstraints extension',
      call: {
        token,
        identity: WEB,
        csr: (await opensslCsr({ extensions: [spiffeSanExt(WEB), '2.5.29.19=critical,DER:01:02:03'] }))
          .csrPem,
      },
      code: grpc.status.INVALID_ARGUMENT,
      details: /basicConstraints is malformed/,
    },
    {
      name: 'no token',
      call: { identity: WEB, csr: good },
      code: grpc.status.UNAUTHENTICATED,
      details: /no bearer token/,
    },
    {
      name: 'unknown token',
      call: { token: 'not-a-token', identity: WEB, csr: good },
      code: grpc.status.UNAUTHENTICATED,
      details: /unknown bearer token/,
    },
    {
      name: 'malformed CSR',
      call: {
        token,
        identity: WEB,
        csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      },
      code: grpc.status.INVALID_ARGUMENT,
      details: /malformed/,
    },
    {
      name: 'not PEM at all',
      call: { token, identity: WEB, csr: 'hello' },
      code: grpc.status.INVALID_ARGUMENT,
      details: /not a PEM/,
    },
    {
      name: 'TTL above the maximum',
      call: { token, identity: WEB, csr: good, ttlSeconds: 91 * 24 * 3600 },
      code: grpc.status.INVALID_ARGUMENT,
      details: /greater than the max allowed TTL/,
    },
    {
      name: 'identity outside the trust domain',
      call: { token, identity: 'spiffe://other.org/ns/default/sa/web', csr: good },
      code: grpc.status.PERMISSION_DENIED,
      details: /outside trust domain cluster.local/,
    },
    {
      name: 'no ImpersonatedIdentity',
      call: { token, csr: good },
      code: grpc.status.PERMISSION_DENIED,
      details: /ImpersonatedIdentity/,
    },
    {
      name: 'not a SPIFFE ID',
      call: { token, identity: 'spiffe://cluster.local/web', csr: good },
      code: grpc.status.INVALID_ARGUMENT,
      details: /invalid SPIFFE ID/,
    },
  ];
  await expectRefusals(t, cases, call);
  const after = await call({ token, identity: WEB, csr: good, ttlSeconds: 3600 });
  t.equal(after.code, grpc.status.OK, `still serving after refusals: ${after.details}`);
});

t.test('a restarted CA keeps its root and earlier certificates still verify', async (t) => {
  const first = await startTestCa({ placement });
  const stateDir = first.stateDir;
  t.teardown(() => removeDir(stateDir));
  const token = createNodeToken(join(stateDir, NODE_TOKENS_FILE), 'node-1');
  const csr = (await opensslCsr({ extensions: [spiffeSanExt(WEB)] })).csrPem;
  const issued = await rawCreateCertificate(first.grpcAddress, first.authority.rootsPem, {
    token,
    csr,
    identity: WEB,
  });
  t.equal(issued.code, grpc.status.OK, issued.details);
  t.equal(first.authority.origin, 'generated');
  const rootBefore = first.authority.rootsPem;
  await first.close();

  const second = await startTestCa({ placement, stateDir });
  t.teardown(() => second.close());
  t.equal(second.authority.origin, 'loaded', 'root loaded from disk, not regenerated');
  t.equal(second.authority.rootsPem, rootBefore, 'same root');
  const files = writeTempFiles({ 'old-leaf.pem': issued.chain[0]!, 'bundle.pem': second.authority.rootsPem });
  t.teardown(() => removeDir(files.dir));
  const verify = await run('openssl', [
    'verify',
    '-CAfile',
    files.paths['bundle.pem']!,
    files.paths['old-leaf.pem']!,
  ]);
  t.equal(verify.code, 0, `earlier certificate verifies against the restarted CA's bundle: ${verify.stderr}`);
  const again = await rawCreateCertificate(second.grpcAddress, rootBefore, { token, csr, identity: WEB });
  t.equal(again.code, grpc.status.OK, 'the old token and root still work after restart');
});
