// Hand-built hostile CSRs that OpenSSL's command line will not produce: extra extensionRequest
// attributes or values. Starts from an OpenSSL CSR, edits its ASN.1, and re-signs with its key.
import { createSign } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import {
  Attribute,
  Extension,
  Extensions,
  BasicConstraints,
  id_ce_basicConstraints,
} from '@peculiar/asn1-x509';
import { OctetString } from '@peculiar/asn1-schema';
import { x509 } from '../../core/x509.js';
import type { OpensslCsr } from './openssl.js';

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

function caTrueExtensions(): ArrayBuffer {
  const bc = new Extension({
    extnID: id_ce_basicConstraints,
    critical: true,
    extnValue: new OctetString(AsnConvert.serialize(new BasicConstraints({ cA: true }))),
  });
  return AsnConvert.serialize(new Extensions([bc]));
}

function resign(req: CertificationRequest, keyPem: string): string {
  const tbs = Buffer.from(AsnConvert.serialize(req.certificationRequestInfo));
  const signer = createSign('SHA256');
  signer.update(tbs);
  req.signature = new Uint8Array(signer.sign(keyPem)).buffer;
  return x509.PemConverter.encode(AsnConvert.serialize(req), 'CERTIFICATE REQUEST') + '\n';
}

/** The CSR plus a second extensionRequest attribute asking for CA:TRUE. */
export function withSecondExtensionRequest(base: OpensslCsr): string {
  const req = AsnConvert.parse(x509.PemConverter.decodeFirst(base.csrPem), CertificationRequest);
  req.certificationRequestInfo.attributes.push(
    new Attribute({ type: OID_EXTENSION_REQUEST, values: [caTrueExtensions()] }),
  );
  return resign(req, base.keyPem);
}

/** The CSR with a second value in its extensionRequest attribute asking for CA:TRUE. */
export function withSecondExtensionValue(base: OpensslCsr): string {
  const req = AsnConvert.parse(x509.PemConverter.decodeFirst(base.csrPem), CertificationRequest);
  const attr = req.certificationRequestInfo.attributes.find((a) => a.type === OID_EXTENSION_REQUEST);
  if (!attr) throw new Error('base CSR has no extensionRequest');
  attr.values.push(caTrueExtensions());
  return resign(req, base.keyPem);
}
