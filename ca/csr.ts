// Checks a workload's CSR before anything is signed: well-formed, self-signed, a strong key, no CA
// request, and exactly the one URI SAN the caller is authorized for. The CA copies nothing else from it.
import { createPublicKey } from 'node:crypto';
import { WeftError } from '../core/errors.js';
import { x509 } from '../core/x509.js';

/** A CSR for a P-256 key is ~400 bytes; 16 KiB leaves room for RSA 4096 and refuses abuse early. */
export const MAX_CSR_PEM_BYTES = 16 * 1024;
const RSA_MIN_BITS = 2048;
const CSR_PEM_RE =
  /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----[\s\S]+-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;
const OID_SAN = '2.5.29.17';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

function invalid(message: string, object: string): WeftError {
  return new WeftError('ERR_CSR_INVALID', message, { object });
}

function checkKeyStrength(csr: x509.Pkcs10CertificateRequest, who: string): void {
  let key;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw new WeftError('ERR_CSR_INVALID', 'CSR public key cannot be parsed', { object: who }, err);
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1' || details.namedCurve === 'secp384r1') return;
    throw invalid(`CSR key uses curve ${String(details.namedCurve)}; want P-256 or P-384`, who);
  }
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) >= RSA_MIN_BITS) return;
    throw invalid(`CSR key is RSA ${details.modulusLength ?? 0} bits; want at least ${RSA_MIN_BITS}`, who);
  }
  throw invalid(`CSR key type ${String(key.asymmetricKeyType)} is not allowed; want ECDSA or RSA`, who);
}

/**
 * Parses and checks a CSR for `spiffeId`; returns its public key. Throws ERR_CSR_INVALID for a malformed,
 * unsigned, weak or CA-requesting CSR, and ERR_CSR_IDENTITY when its SANs are not exactly `spiffeId`.
 */
export async function checkWorkloadCsr(csrPem: string, spiffeId: string): Promise<x509.PublicKey> {
  if (Buffer.byteLength(csrPem) > MAX_CSR_PEM_BYTES)
    throw invalid(`CSR is larger than ${MAX_CSR_PEM_BYTES} bytes`, spiffeId);
  if (!CSR_PEM_RE.test(csrPem)) throw invalid('CSR is not a PEM "CERTIFICATE REQUEST"', spiffeId);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new WeftError('ERR_CSR_INVALID', 'CSR is malformed (not PKCS#10 DER)', { object: spiffeId }, err);
  }
  // A signature the library cannot even evaluate counts as not verifying.
  const signed = await csr.verify().catch(() => false);
  if (!signed) throw invalid('CSR signature does not verify with its own key', spiffeId);
  checkKeyStrength(csr, spiffeId);

  let sanSeen = false;
  for (const ext of csr.extensions) {
    if (ext.type === OID_BASIC_CONSTRAINTS) {
      const bc = new x509.BasicConstraintsExtension(ext.rawData);
      if (bc.ca) throw invalid('CSR asks for CA:TRUE; workload certificates are never CAs', spiffeId);
    } else if (ext.type === OID_SAN) {
      if (sanSeen) throw invalid('CSR has more than one subjectAltName extension', spiffeId);
      sanSeen = true;
      const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
      const names = san.names.items.map((n) => `${n.type}:${n.value}`);
      if (names.length !== 1 || names[0] !== `url:${spiffeId}`)
        throw new WeftError(
          'ERR_CSR_IDENTITY',
          `CSR asks for SANs [${names.join(', ')}]; it may ask only for URI ${spiffeId}`,
          { object: spiffeId, field: 'subjectAltName' },
        );
    }
  }
  if (!sanSeen)
    throw new WeftError(
      'ERR_CSR_IDENTITY',
      `CSR carries no subjectAltName; it must ask for URI ${spiffeId}`,
      {
        object: spiffeId,
        field: 'subjectAltName',
      },
    );
  return csr.publicKey;
}
