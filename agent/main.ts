// Wiring of the node agent: config store and source, CA client, certificate manager kept in step with
// the pods of this node, and the admin endpoint. Decides nothing; returns a handle with the bound
// addresses, which tests use too. The data plane (HBONE, policy, capture) plugs in here later.
import { once } from 'node:events';
import type { Server } from 'node:http';
import { componentLogger } from '../core/log.js';
import { formatHostPort, type HostPort } from '../core/address.js';
import { ConfigStore } from '../core/store.js';
import { createConfigSource } from '../core/sources/index.js';
import type { ConfigSource } from '../core/sources/source.js';
import { GrpcCaClient, type CaClient } from './identity/ca-client.js';
import { CertificateManager } from './identity/manager.js';
import { identitiesForNode } from './identity/node-identities.js';
import { createAdminServer } from './admin.js';

export const DEFAULT_ADMIN_PORT = 15000;

export interface AgentOptions {
  readonly nodeName: string;
  readonly trustDomain: string;
  /** `file:DIR` (or, later, `kubernetes`). */
  readonly configSource: string;
  readonly ca: {
    readonly address: HostPort;
    readonly rootCertFile: string;
    readonly tokenFile: string;
    readonly serverName?: string | undefined;
  };
  readonly certTtlSeconds: number;
  readonly adminListen: HostPort;
  /** Tests may pass their own CA client; by default a GrpcCaClient from `ca`. */
  readonly caClient?: CaClient;
}

export interface AgentHandle {
  readonly adminAddress: HostPort;
  readonly store: ConfigStore;
  readonly certificates: CertificateManager;
  close(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<AgentHandle> {
  const log = componentLogger('agent');
  const store = new ConfigStore();
  const source: ConfigSource = createConfigSource(options.configSource);
  const caClient = options.caClient ?? new GrpcCaClient(options.ca);
  const certificates = new CertificateManager({
    caClient,
    trustDomain: options.trustDomain,
    ttlSeconds: options.certTtlSeconds,
    log: componentLogger('agent.identity'),
  });
  let ready = false;

  // Keep certificates for exactly the enrolled pods of this node, re-checked on every config change.
  const syncIdentities = (): void =>
    certificates.setWanted(identitiesForNode(store, options.nodeName, options.trustDomain));
  store.on('applied', syncIdentities);

  const admin: Server = createAdminServer({
    nodeName: options.nodeName,
    certificates,
    isReady: () => ready,
    configVersion: () => store.version,
  });
  admin.listen(options.adminListen.port, options.adminListen.host);
  await once(admin, 'listening');
  const addr = admin.address();
  const adminAddress = {
    host: options.adminListen.host,
    port: typeof addr === 'object' && addr ? addr.port : 0,
  };

  await source.start(store);
  syncIdentities();
  ready = true;
  log.info(
    { node: options.nodeName, config: source.description, admin: formatHostPort(adminAddress) },
    'agent ready',
  );

  return {
    adminAddress,
    store,
    certificates,
    async close() {
      await source.stop();
      store.off('applied', syncIdentities);
      certificates.close();
      caClient.close();
      admin.close();
      admin.closeAllConnections();
    },
  };
}
