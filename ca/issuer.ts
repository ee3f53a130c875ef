// Signs X.509-SVIDs and the CA's own serving certificate with the signing authority.
import { x509, randomSerialHex, NOT_BEFORE_BACKDATE_MS } from '../core/x509.js';
import type { SigningAuthority } from './authority.js';

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

function chainFor(authority: SigningAuthority, leaf: x509.X509Certificate): string[] {
  return [
    leaf.toString('pem') + '\n',
    ...authority.chain.map((c) => c.toString('pem') + '\n'),
    authority.rootsPem,
  ];
}

interface LeafProfile {
  readonly subject: string;
  readonly sans: x509.JsonGeneralName[];
  /** Must be critical when the subject is empty (RFC 5280 §4.2.1.6). */
  readonly sanCritical: boolean;
  readonly extendedKeyUsages: string[];
}

/** Signs a non-CA leaf for `publicKey`: the one place serial, validity and extensions are decided. */
async function signLeaf(
  authority: SigningAuthority,
  publicKey: x509.PublicKey | CryptoKey,
  profile: LeafProfile,
  ttlSeconds: number,
  now: Date,
): Promise<IssuedChain> {
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: profile.subject,
    issuer: authority.cert.subjectName,
    notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
    notAfter: leafNotAfter(authority, now, ttlSeconds),
    signingAlgorithm: authority.algorithm.signing,
    publicKey,
    signingKey: authority.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(profile.extendedKeyUsages),
      new x509.SubjectAlternativeNameExtension(profile.sans, profile.sanCritical),
      await authorityKeyId(authority),
    ],
  });
  return { certChain: chainFor(authority, leaf), leaf };
}

/** Issues an X.509-SVID: empty subject, one critical URI SAN, digitalSignature+keyEncipherment, both EKUs. */
export function issueWorkloadCertificate(
  authority: SigningAuthority,
  publicKey: x509.PublicKey,
  spiffeId: string,
  ttlSeconds: number,
  now: Date = new Date(),
): Promise<IssuedChain> {
  return signLeaf(
    authority,
    publicKey,
    {
      subject: '',
      sans: [{ type: 'url', value: spiffeId }],
      sanCritical: true,
      extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    },
    ttlSeconds,
    now,
  );
}

/** Issues the CA's own TLS serving certificate for the given DNS names and IP addresses. */
export function issueServingCertificate(
  authority: SigningAuthority,
  publicKey: CryptoKey,
  names: { dns: readonly string[]; ips: readonly string[] },
  ttlSeconds: number,
  now: Date = new Date(),
): Promise<IssuedChain> {
  return signLeaf(
    authority,
    publicKey,
    {
      subject: `CN=${names.dns[0] ?? 'weft-ca'}`,
      sans: [
        ...names.dns.map((value) => ({ type: 'dns' as const, value })),
        ...names.ips.map((value) => ({ type: 'ip' as const, value })),
      ],
      sanCritical: false,
      extendedKeyUsages: [x509.ExtendedKeyUsage.serverAuth],
    },
    ttlSeconds,
    now,
  );
}
