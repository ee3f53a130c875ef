// A fresh P-256 key and its CSR for one SPIFFE ID, shaped as ztunnel's: empty subject, one critical URI SAN.
import { x509, generateP256KeyPair, P256_SIGNING } from '../x509.js';

export interface WorkloadCsr {
  readonly csrPem: string;
  readonly keys: CryptoKeyPair;
}

export async function createWorkloadCsr(spiffeId: string): Promise<WorkloadCsr> {
  const keys = await generateP256KeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: P256_SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true)],
  });
  return { csrPem: csr.toString('pem'), keys };
}
