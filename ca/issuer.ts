// Signs X.509-SVIDs and the CA's own serving certificate with the signing authority.
import { x509, randomSerialHex, type SigningKeyAlgorithm } from '../core/x509.js';
import type { SigningAuthority } from './authority.js';

/** Backdating NotBefore absorbs clock skew between nodes (Istio uses the same 2 minutes). */
export const NOT_BEFORE_BACKDATE_MS = 2 * 60_000;

export interface IssuedChain {
  /** Leaf first, then intermediates, the root bundle last — Istio's cert_chain layout. */
  readonly certChain: string[];
  readonly leaf: x509.X509Certificate;
}

function leafNotAfter(authority: SigningAuthority, now: Date, ttlSeconds: number): Date {
  // A leaf must not outlive its issuer; trim rather than hand out a chain that breaks early.
  const wanted = now.getTime() + ttlSeconds * 1000;
  return new Date(Math.min(wanted, authority.cert.notAfter.getTime()));
}

async function authorityKeyId(authority: SigningAuthority): Promise<x509.Extension> {
  const ski = authority.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
  return x509.AuthorityKeyIdentifierExtension.create(authority.cert.publicKey);
}

function signingParams(algorithm: SigningKeyAlgorithm): Algorithm | EcdsaParams {
  return algorithm.signing;
}

function chainFor(authority: SigningAuthority, leaf: x509.X509Certificate): string[] {
  return [
    leaf.toString('pem') + '\n',
    ...authority.chain.map((c) => c.toString('pem') + '\n'),
    authority.rootsPem,
  ];
}

/** Issues an X.509-SVID: empty subject, one critical URI SAN, digitalSignature+keyEncipherment, both EKUs. */
export async function issueWorkloadCertificate(
  authority: SigningAuthority,
  publicKey: x509.PublicKey,
  spiffeId: string,
  ttlSeconds: number,
  now: Date = new Date(),
): Promise<IssuedChain> {
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: '',
    issuer: authority.cert.subjectName,
    notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
    notAfter: leafNotAfter(authority, now, ttlSeconds),
    signingAlgorithm: signingParams(authority.algorithm),
    publicKey,
    signingKey: authority.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      // Critical because the subject is empty (RFC 5280 §4.2.1.6).
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
      await authorityKeyId(authority),
    ],
  });
  return { certChain: chainFor(authority, leaf), leaf };
}

/** Issues the CA's own TLS serving certificate for the given DNS names and IP addresses. */
export async function issueServingCertificate(
  authority: SigningAuthority,
  publicKey: CryptoKey,
  names: { dns: readonly string[]; ips: readonly string[] },
  ttlSeconds: number,
  now: Date = new Date(),
): Promise<IssuedChain> {
  const sans: x509.JsonGeneralName[] = [
    ...names.dns.map((value) => ({ type: 'dns' as const, value })),
    ...names.ips.map((value) => ({ type: 'ip' as const, value })),
  ];
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: `CN=${names.dns[0] ?? 'weft-ca'}`,
    issuer: authority.cert.subjectName,
    notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
    notAfter: leafNotAfter(authority, now, ttlSeconds),
    signingAlgorithm: signingParams(authority.algorithm),
    publicKey,
    signingKey: authority.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans, false),
      await authorityKeyId(authority),
    ],
  });
  return { certChain: chainFor(authority, leaf), leaf };
}
