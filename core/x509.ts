// X.509 helpers shared by the CA and the agent: one crypto provider, PEM splitting, key import.
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { webcrypto, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const subtle = webcrypto.subtle;

/** ECDSA P-256 with SHA-256: the profile of every workload key and signature (ztunnel's). */
export const P256_KEY_PARAMS: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
export const P256_SIGNING: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/** Backdating NotBefore absorbs clock skew between nodes (Istio uses the same 2 minutes). */
export const NOT_BEFORE_BACKDATE_MS = 2 * 60_000;

const PEM_CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Splits a PEM bundle into one PEM string per certificate, in file order. */
export function splitPemCertificates(pem: string): string[] {
  return (pem.match(PEM_CERT_RE) ?? []).map((block) => `${block}\n`);
}

export function parseCertificates(pem: string): x509.X509Certificate[] {
  return splitPemCertificates(pem).map((block) => new x509.X509Certificate(block));
}

export async function generateP256KeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(P256_KEY_PARAMS, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function exportPkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** The WebCrypto parameters that sign with a key of this type, and that import it. */
export interface SigningKeyAlgorithm {
  readonly importParams: EcKeyImportParams | RsaHashedImportParams;
  readonly signing: EcdsaParams | Algorithm;
  /** A short description for logs and errors, e.g. `ECDSA P-256`. */
  readonly description: string;
}

const RSA_MIN_BITS = 2048;

export type KeyStrength =
  | { readonly type: 'ec'; readonly curve: 'P-256' | 'P-384' }
  | { readonly type: 'rsa'; readonly bits: number };

/**
 * The one rule for acceptable keys, public or private: ECDSA P-256 or P-384, or RSA of at least 2048
 * bits. Throws an Error saying what the key is and what is wanted.
 */
export function keyStrength(key: KeyObject): KeyStrength {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return { type: 'ec', curve: 'P-256' };
    if (details.namedCurve === 'secp384r1') return { type: 'ec', curve: 'P-384' };
    throw new Error(`EC key on curve ${String(details.namedCurve)}; want P-256 or P-384`);
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS) throw new Error(`RSA key of ${bits} bits; want at least ${RSA_MIN_BITS}`);
    return { type: 'rsa', bits };
  }
  throw new Error(
    `key type ${String(key.asymmetricKeyType)}; want ECDSA (P-256/P-384) or RSA ≥ ${RSA_MIN_BITS}`,
  );
}

/** How to sign with a key: ECDSA hashed to match the curve; RSA PKCS#1 v1.5 with SHA-256. */
export function signingAlgorithmFor(key: KeyObject): SigningKeyAlgorithm {
  const strength = keyStrength(key);
  if (strength.type === 'rsa')
    return {
      importParams: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      signing: { name: 'RSASSA-PKCS1-v1_5' },
      description: `RSA ${strength.bits}`,
    };
  return {
    importParams: { name: 'ECDSA', namedCurve: strength.curve },
    signing: { name: 'ECDSA', hash: strength.curve === 'P-256' ? 'SHA-256' : 'SHA-384' } as EcdsaParams,
    description: `ECDSA ${strength.curve}`,
  };
}

/** Imports a PEM private key (PKCS#8, SEC1 or PKCS#1) as a non-extractable WebCrypto signing key. */
export async function importSigningKey(
  pem: string,
): Promise<{ key: CryptoKey; algorithm: SigningKeyAlgorithm }> {
  const keyObject = createPrivateKey(pem);
  const algorithm = signingAlgorithmFor(keyObject);
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const key = await subtle.importKey('pkcs8', der, algorithm.importParams, false, ['sign']);
  return { key, algorithm };
}

/** True when the private key is the one the certificate's public key belongs to. */
export function keyMatchesCertificate(privateKeyPem: string, cert: x509.X509Certificate): boolean {
  const fromKey = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' });
  return Buffer.from(cert.publicKey.rawData).equals(fromKey);
}

/** The URI SANs of a certificate, in order. */
export function uriSans(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  return san.names.items.filter((n) => n.type === 'url').map((n) => n.value);
}

/** A random positive 128-bit serial number as hex (RFC 5280 §4.1.2.2: positive, ≤ 20 octets). */
export function randomSerialHex(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

/**
 * True when each certificate of `chain` (leaf first) is signed by the next and the last by one of
 * `roots`, and every one is within its validity at `at`. Signatures and dates only: name and usage
 * checks belong to the caller.
 */
export async function chainsToRoots(
  chain: readonly x509.X509Certificate[],
  roots: readonly x509.X509Certificate[],
  at: Date = new Date(),
): Promise<boolean> {
  if (chain.length === 0) return false;
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!;
    if (at < cert.notBefore || at > cert.notAfter) return false;
    const issuers = i + 1 < chain.length ? [chain[i + 1]!] : roots;
    let signed = false;
    for (const issuer of issuers) {
      if (cert.issuer !== issuer.subject) continue;
      if (await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true })) {
        signed = true;
        break;
      }
    }
    if (!signed) return false;
  }
  return true;
}
