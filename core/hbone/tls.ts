// TLS for HBONE: contexts built from workload certificates, and the identity checks on both ends.
//
// Server: requires a client certificate chaining to the mesh roots and from our trust domain; the
// client's exact identity is left to authorization policy (as ztunnel). Client: the server's leaf must
// carry the expected SPIFFE ID as a URI SAN; DNS names and SNI play no part.
import tls from 'node:tls';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { parseSpiffeId, type SpiffeIdentity } from '../spiffe.js';
import { ALPN_H2, HANDSHAKE_TIMEOUT_MS, TLS_CIPHERSUITES, TLS_MIN_VERSION } from './settings.js';
import type { WorkloadCertificate } from '../identity/manager.js';

/** The options every HBONE TLS endpoint shares, for a given workload certificate. */
export function tlsOptionsFor(cert: WorkloadCertificate): tls.SecureContextOptions {
  return {
    key: cert.privateKeyPem,
    cert: cert.certChainPem,
    ca: cert.rootsPem,
    minVersion: TLS_MIN_VERSION,
    // Node takes TLS 1.3 suite names in `ciphers`; with TLS 1.3 only, nothing else is offered.
    ciphers: TLS_CIPHERSUITES,
  };
}

const contexts = new WeakMap<WorkloadCertificate, tls.SecureContext>();

/** One SecureContext per certificate object; a rotated certificate is a new object, so a new context. */
export function secureContextFor(cert: WorkloadCertificate): tls.SecureContext {
  let ctx = contexts.get(cert);
  if (!ctx) {
    ctx = tls.createSecureContext(tlsOptionsFor(cert));
    contexts.set(cert, ctx);
  }
  return ctx;
}

/** Server-side TLS options of an HBONE listener presenting `cert`. */
export function hboneServerTlsOptions(cert: WorkloadCertificate): tls.TlsOptions {
  return {
    ...tlsOptionsFor(cert),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [ALPN_H2],
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    // Clients never resume (the pool passes no session, as ztunnel), so every tunnel proves both
    // identities afresh; tickets the server may still issue go unused.
    sessionTimeout: 0,
  };
}

/** The SPIFFE URI SANs of a peer certificate as Node reports them (`URI:spiffe://…, DNS:…`). */
export function spiffeUris(cert: PeerCertificate | undefined): string[] {
  const san = cert?.subjectaltname;
  if (!san) return [];
  const out: string[] = [];
  // Node quotes entries holding separators; a quoted entry is never a valid SPIFFE ID, so it is skipped.
  for (const entry of san.split(', ')) if (entry.startsWith('URI:spiffe://')) out.push(entry.slice(4));
  return out;
}

/** The peer's identity: its first parseable SPIFFE URI SAN, or undefined. */
export function peerIdentity(socket: TLSSocket): SpiffeIdentity | undefined {
  for (const uri of spiffeUris(socket.getPeerCertificate())) {
    try {
      return parseSpiffeId(uri);
    } catch {
      // try the next SAN
    }
  }
  return undefined;
}

/**
 * checkServerIdentity for an HBONE client: chain and expiry are already verified by OpenSSL against the
 * mesh roots; here the leaf must name `expected`.
 */
export function expectIdentity(expected: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) =>
    spiffeUris(cert).includes(expected)
      ? undefined
      : new Error(`peer identity [${spiffeUris(cert).join(', ')}] is not the expected ${expected}`);
}
