// Checks a workload's CSR before anything is signed: well-formed, self-signed, a strong key, no CA
// request, and exactly the one URI SAN the caller is authorized for. The CA copies nothing from it but
// the public key; the checks exist so that a CSR asking for more is refused, not silently narrowed.
//
// Extensions are read from the raw ASN.1, not through @peculiar/x509's convenience view: that view
// shows only the first extensionRequest value and drops SAN entries it cannot represent, which would
// let a second request or an otherName slip past.
import { createPublicKey } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import {
  BasicConstraints,
  Extensions,
  GeneralNames,
  id_ce_basicConstraints,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { WeftError } from '../core/errors.js';
import { x509, keyStrength } from '../core/x509.js';

/** A CSR for a P-256 key is ~400 bytes; 16 KiB leaves room for RSA 4096 and refuses abuse early. */
export const MAX_CSR_PEM_BYTES = 16 * 1024;
const CSR_PEM_RE =
  /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----[\s\S]+-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;
/** PKCS#9 extensionRequest. */
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

function invalid(message: string, spiffeId: string, cause?: unknown): WeftError {
  return new WeftError('ERR_CSR_INVALID', message, { object: spiffeId }, cause);
}

function wrongIdentity(message: string, spiffeId: string): WeftError {
  return new WeftError('ERR_CSR_IDENTITY', message, { object: spiffeId, field: 'subjectAltName' });
}

/** Parses ASN.1 or throws ERR_CSR_INVALID naming what could not be read. */
function parseAsn<T>(der: ArrayBuffer, type: new () => T, what: string, spiffeId: string): T {
  try {
    return AsnConvert.parse(der, type);
  } catch (err) {
    throw invalid(`CSR ${what} is malformed`, spiffeId, err);
  }
}

function describeName(n: GeneralNames[number]): string {
  if (n.uniformResourceIdentifier !== undefined) return `URI:${n.uniformResourceIdentifier}`;
  if (n.dNSName !== undefined) return `DNS:${n.dNSName}`;
  if (n.iPAddress !== undefined) return `IP:${n.iPAddress}`;
  if (n.rfc822Name !== undefined) return `email:${n.rfc822Name}`;
  if (n.otherName !== undefined) return `otherName:${n.otherName.typeId}`;
  if (n.directoryName !== undefined) return 'dirName';
  if (n.registeredID !== undefined) return `RID:${n.registeredID}`;
  return 'other';
}

/** Walks the requested extensions: at most one request, no repeated OIDs, no CA, exactly our SAN. */
function checkRequestedExtensions(request: CertificationRequest, spiffeId: string): void {
  const requests = request.certificationRequestInfo.attributes.filter(
    (a) => a.type === OID_EXTENSION_REQUEST,
  );
  if (requests.length !== 1 || requests[0]!.values.length !== 1)
    throw requests.length === 0
      ? wrongIdentity(`CSR carries no subjectAltName; it must ask for URI ${spiffeId}`, spiffeId)
      : invalid('CSR must hold exactly one extensionRequest with one value', spiffeId);
  const extensions = parseAsn(requests[0]!.values[0]!, Extensions, 'extensionRequest', spiffeId);
  const seen = new Set<string>();
  let sanOk = false;
  for (const ext of extensions) {
    if (seen.has(ext.extnID)) throw invalid(`CSR repeats extension ${ext.extnID}`, spiffeId);
    seen.add(ext.extnID);
    const value = ext.extnValue.buffer;
    if (ext.extnID === id_ce_basicConstraints) {
      const bc = parseAsn(value, BasicConstraints, 'basicConstraints', spiffeId);
      if (bc.cA) throw invalid('CSR asks for CA:TRUE; workload certificates are never CAs', spiffeId);
    } else if (ext.extnID === id_ce_subjectAltName) {
      const names = parseAsn(value, GeneralNames, 'subjectAltName', spiffeId);
      const shown = names.map(describeName);
      if (names.length !== 1 || names[0]!.uniformResourceIdentifier !== spiffeId)
        throw wrongIdentity(
          `CSR asks for SANs [${shown.join(', ')}]; it may ask only for URI ${spiffeId}`,
          spiffeId,
        );
      sanOk = true;
    }
  }
  if (!sanOk) throw wrongIdentity(`CSR carries no subjectAltName; it must ask for URI ${spiffeId}`, spiffeId);
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
    throw invalid('CSR is malformed (not PKCS#10 DER)', spiffeId, err);
  }
  // A signature the library cannot even evaluate counts as not verifying.
  const signed = await csr.verify().catch(() => false);
  if (!signed) throw invalid('CSR signature does not verify with its own key', spiffeId);
  try {
    keyStrength(createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' }));
  } catch (err) {
    throw invalid(`CSR key is not allowed: ${(err as Error).message}`, spiffeId, err);
  }
  checkRequestedExtensions(parseAsn(csr.rawData, CertificationRequest, 'structure', spiffeId), spiffeId);
  return csr.publicKey;
}
