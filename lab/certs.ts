// Certificates signed directly by a CA's state directory, for peers that do not speak the CA API
// (HAProxy in the bench, Python clients in tests). Same authority, same profile as the CA issues.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSigningAuthority } from '../ca/authority.js';
import { issueWorkloadCertificate } from '../ca/issuer.js';
import { exportPkcs8Pem, generateP256KeyPair, x509 } from '../core/x509.js';

export interface CertificateFiles {
  /** Leaf and intermediates, PEM. */
  readonly cert: string;
  readonly key: string;
  /** Certificate chain then key, in one file (HAProxy's `crt`). */
  readonly combined: string;
}

export async function issueCertificateFiles(
  stateDir: string,
  trustDomain: string,
  spiffeId: string,
  dir: string,
  name: string,
  ttlSeconds = 3600,
): Promise<CertificateFiles> {
  const authority = await loadSigningAuthority({ stateDir, trustDomain });
  const keys = await generateP256KeyPair();
  const issued = await issueWorkloadCertificate(
    authority,
    await x509.PublicKey.create(keys.publicKey),
    spiffeId,
    ttlSeconds,
  );
  const chain = issued.certChain.slice(0, -1).join('');
  const keyPem = await exportPkcs8Pem(keys.privateKey);
  const files = {
    cert: join(dir, `${name}.pem`),
    key: join(dir, `${name}-key.pem`),
    combined: join(dir, `${name}-combined.pem`),
  };
  writeFileSync(files.cert, chain);
  writeFileSync(files.key, keyPem, { mode: 0o600 });
  writeFileSync(files.combined, chain + keyPem, { mode: 0o600 });
  return files;
}
