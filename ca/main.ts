// Wiring of the mesh CA: signing authority, caller authentication, node authorization fed by the config
// model, the gRPC certificate service over TLS, and a small HTTP endpoint for the trust bundle. Decides
// nothing itself; returns a handle with the bound addresses, which tests use too.
import { createServer, type Server as HttpServer } from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { caServiceDefinition } from '../core/ca-api.js';
import { componentLogger } from '../core/log.js';
import { formatHostPort, type HostPort } from '../core/address.js';
import { exportPkcs8Pem, generateP256KeyPair } from '../core/x509.js';
import { loadSigningAuthority, type SigningAuthority } from './authority.js';
import { BootstrapTokenAuthenticator, NODE_TOKENS_FILE, type CallerAuthenticator } from './node-tokens.js';
import { NodeAuthorizer, type PodPlacement } from './node-authorizer.js';
import { CertificateService } from './certificate-service.js';
import { issueServingCertificate } from './issuer.js';

export const DEFAULT_CA_PORT = 15012;
export const DEFAULT_CA_HTTP_PORT = 15014;
/** Istio's defaults: 24 h workload certificates, at most 90 days. */
export const DEFAULT_WORKLOAD_TTL_S = 24 * 3600;
export const MAX_WORKLOAD_TTL_S = 90 * 24 * 3600;
/** The serving certificate is re-issued on every start, so a year never needs rotation in practice. */
const SERVING_CERT_TTL_S = 365 * 24 * 3600;
/** A CSR request is ~1 KiB; anything far larger is refused before parsing. */
const MAX_REQUEST_BYTES = 64 * 1024;

export interface CaOptions {
  readonly stateDir: string;
  readonly pluginDir?: string | undefined;
  readonly trustDomain: string;
  readonly grpcListen: HostPort;
  /** Trust bundle and readiness over plain HTTP; null to disable. */
  readonly httpListen: HostPort | null;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  /** Names the serving certificate carries, so agents can verify the CA by DNS name or IP. */
  readonly servingDnsNames: readonly string[];
  readonly servingIps: readonly string[];
  /** Where pods run: the config store in production, anything with the same contract in tests. */
  readonly placement: PodPlacement;
  /** Defaults to bootstrap tokens from `<stateDir>/node-tokens`. */
  readonly authenticator?: CallerAuthenticator;
}

export interface CaHandle {
  readonly grpcAddress: HostPort;
  readonly httpAddress: HostPort | null;
  readonly authority: SigningAuthority;
  close(): Promise<void>;
}

function serveTrustBundle(authority: SigningAuthority): HttpServer {
  return createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/trust-bundle') {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' });
      res.end(authority.rootsPem);
    } else if (req.method === 'GET' && req.url === '/healthz/ready') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ready\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
}

export async function startCa(options: CaOptions): Promise<CaHandle> {
  const log = componentLogger('ca');
  const authority = await loadSigningAuthority({
    stateDir: options.stateDir,
    pluginDir: options.pluginDir,
    trustDomain: options.trustDomain,
  });
  log.info(
    { origin: authority.origin, root: authority.cert.subject, key: authority.algorithm.description },
    'signing authority ready',
  );

  const servingKeys = await generateP256KeyPair();
  const serving = await issueServingCertificate(
    authority,
    servingKeys.publicKey,
    { dns: options.servingDnsNames, ips: options.servingIps },
    SERVING_CERT_TTL_S,
  );
  const servingChain = serving.certChain.slice(0, -1).join('');
  const credentials = grpc.ServerCredentials.createSsl(
    null,
    [
      {
        private_key: Buffer.from(await exportPkcs8Pem(servingKeys.privateKey)),
        cert_chain: Buffer.from(servingChain),
      },
    ],
    false,
  );

  const service = new CertificateService({
    authority,
    authenticator:
      options.authenticator ??
      new BootstrapTokenAuthenticator(
        join(options.stateDir, NODE_TOKENS_FILE),
        componentLogger('ca.node-tokens'),
      ),
    authorizer: new NodeAuthorizer(options.trustDomain, options.placement),
    defaultTtlSeconds: options.defaultTtlSeconds,
    maxTtlSeconds: options.maxTtlSeconds,
    log: componentLogger('ca.certificate-service'),
  });
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
    'grpc.max_concurrent_streams': 100,
  });
  server.addService(caServiceDefinition(), service.handlers());
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(formatHostPort(options.grpcListen), credentials, (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
  const grpcAddress = { host: options.grpcListen.host, port: grpcPort };

  let http: HttpServer | null = null;
  let httpAddress: HostPort | null = null;
  if (options.httpListen) {
    http = serveTrustBundle(authority);
    http.listen(options.httpListen.port, options.httpListen.host);
    await once(http, 'listening');
    const addr = http.address();
    httpAddress = { host: options.httpListen.host, port: typeof addr === 'object' && addr ? addr.port : 0 };
  }
  log.info(
    { grpc: formatHostPort(grpcAddress), http: httpAddress && formatHostPort(httpAddress) },
    'ca serving',
  );

  return {
    grpcAddress,
    httpAddress,
    authority,
    async close() {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      if (http) {
        http.close();
        http.closeAllConnections();
      }
    },
  };
}
