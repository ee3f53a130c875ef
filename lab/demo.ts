// The first-session demo: a CA and one node agent as real processes on loopback. The agent obtains
// SVIDs for the enrolled pods of its node; we show them with OpenSSL, and show the CA refusing an
// identity whose pods run on another node. (The full lab of network namespaces comes with capture.)
import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcCaClient } from '../core/identity/ca-client.js';
import { createWorkloadCsr } from '../core/identity/csr.js';
import { errorMessage } from '../core/errors.js';
import { CA_SERVER_NAME, startCaProcess } from './ca-process.js';
import { freePort, spawnWeft, stopChild, waitFor } from './processes.js';
import { DEMO_MANIFESTS, DEMO_EXPECTED_NODE1_IDENTITIES, DEMO_REFUSED_IDENTITY } from './demo-manifests.js';

export interface DemoOptions {
  /** Keep the processes and files until interrupted. */
  readonly keep: boolean;
  readonly dir?: string | undefined;
  readonly out: (line: string) => void;
}

interface CertView {
  spiffeId: string;
  state: string;
  serialNumber?: string;
  notBefore?: string;
  notAfter?: string;
  certChainPem?: string;
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const out = options.out;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'weft-demo-'));
  const manifests = join(dir, 'manifests');
  const caDir = join(dir, 'ca');
  const logs = join(dir, 'logs');
  for (const d of [manifests, caDir, logs]) mkdirSync(d, { recursive: true });
  writeFileSync(join(manifests, 'demo.yaml'), DEMO_MANIFESTS);
  const adminPort = await freePort();
  out(`weft demo: state in ${dir} (logs in ${logs})`);

  const children: ChildProcess[] = [];
  try {
    out(`▶ starting the CA (gRPC, TLS) with config file:${manifests}`);
    const ca = await startCaProcess(caDir, manifests, join(logs, 'ca.log'));
    children.push(ca.child);
    const caPort = ca.address.port;
    const rootFile = ca.rootCertFile;
    const tokenFile = ca.writeNodeToken('node-1', join(dir, 'node-1.token'));
    out(`▶ issued a bootstrap token for node-1; root certificate at ${rootFile}`);

    out(`▶ starting the agent for node-1 (admin on 127.0.0.1:${adminPort})`);
    children.push(
      spawnWeft(
        [
          'agent',
          'run',
          '--node',
          'node-1',
          '--config',
          `file:${manifests}`,
          '--ca-address',
          `127.0.0.1:${caPort}`,
          '--ca-root',
          rootFile,
          '--token-file',
          tokenFile,
          // Verify the CA by the DNS name in its certificate: TLS SNI may not carry an IP (RFC 6066).
          '--ca-server-name',
          CA_SERVER_NAME,
          '--hbone',
          'off',
          '--socks5',
          'off',
          '--metrics',
          'off',
          '--readiness',
          'off',
          '--admin',
          `127.0.0.1:${adminPort}`,
        ],
        join(logs, 'agent-node-1.log'),
      ),
    );
    const certs = await waitFor('the agent to hold its certificates', async () => {
      const body = (await (await fetch(`http://127.0.0.1:${adminPort}/certs`)).json()) as {
        certificates: CertView[];
      };
      const ready = body.certificates.filter((c) => c.state === 'available');
      return ready.length === DEMO_EXPECTED_NODE1_IDENTITIES.length ? body.certificates : undefined;
    });

    out('');
    out('identities held by the agent on node-1 (GET /certs):');
    for (const c of certs)
      out(`  ${c.spiffeId}\n      serial ${c.serialNumber}  valid ${c.notBefore} → ${c.notAfter}`);
    const got = certs.map((c) => c.spiffeId).sort();
    const want = [...DEMO_EXPECTED_NODE1_IDENTITIES].sort();
    let ok = JSON.stringify(got) === JSON.stringify(want);
    if (!ok) out(`✗ expected exactly ${want.join(', ')}`);

    const leafFile = join(dir, 'web.pem');
    writeFileSync(leafFile, certs.find((c) => c.spiffeId.endsWith('/sa/web'))?.certChainPem ?? '');
    out('');
    out(
      `openssl x509 -in ${leafFile} -noout -subject -issuer -ext subjectAltName,extendedKeyUsage,keyUsage:`,
    );
    out(
      execFileSync(
        'openssl',
        [
          'x509',
          '-in',
          leafFile,
          '-noout',
          '-subject',
          '-issuer',
          '-ext',
          'subjectAltName,extendedKeyUsage,keyUsage',
        ],
        { encoding: 'utf8' },
      ).replace(/^/gm, '  '),
    );
    const verify = execFileSync('openssl', ['verify', '-CAfile', rootFile, leafFile], {
      encoding: 'utf8',
    }).trim();
    out(`openssl verify -CAfile root-cert.pem web.pem: ${verify}`);

    out('');
    out(`▶ node-1 asks for ${DEMO_REFUSED_IDENTITY} (its pods run on node-2):`);
    const client = new GrpcCaClient({
      address: { host: '127.0.0.1', port: caPort },
      rootCertFile: rootFile,
      tokenFile,
      serverName: CA_SERVER_NAME,
    });
    try {
      await client.createCertificate(
        (await createWorkloadCsr(DEMO_REFUSED_IDENTITY)).csrPem,
        DEMO_REFUSED_IDENTITY,
        3600,
      );
      out('  ✗ the CA issued it — this is a bug');
      ok = false;
    } catch (err) {
      out(`  refused as it should be: ${errorMessage(err)}`);
    } finally {
      client.close();
    }
    out('');
    out(ok ? '✔ demo complete' : '✗ demo found a problem');
    if (options.keep) {
      out('processes keep running; press Ctrl-C to stop');
      await new Promise((resolve) => process.once('SIGINT', resolve));
    }
    return ok ? 0 : 1;
  } finally {
    await Promise.all(children.map(stopChild));
  }
}
