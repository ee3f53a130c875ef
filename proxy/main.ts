// Wiring of the waypoint: config store and source, the waypoint's own certificate, the HBONE server, the
// HTTP and TCP paths, the upstream pool, and the HTTP endpoints. Decides nothing; returns a handle with
// the bound addresses, which tests use too.
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { componentLogger } from '../core/log.js';
import { formatHostPort } from '../core/address.js';
import { ConfigStore } from '../core/store.js';
import { createConfigSource, kubernetesCredentialsOf } from '../core/sources/index.js';
import { loadKubeConfig } from '../core/kubernetes/config.js';
import { LeaderElector } from '../core/kubernetes/leader-election.js';
import { WeftError } from '../core/errors.js';
import { formatRejection } from '../core/convert/index.js';
import { formatSpiffeId } from '../core/spiffe.js';
import { isAmbientEnrolled, isTerminated, type Workload } from '../core/model/workload.js';
import { GrpcCaClient } from '../core/identity/ca-client.js';
import { CertificateManager, Priority } from '../core/identity/manager.js';
import { registerCertificateMetrics } from '../core/identity/certificate-metrics.js';
import { CertificateReadiness } from '../core/identity/certificate-readiness.js';
import { HboneClientPool } from '../core/hbone/client-pool.js';
import {
  createAdminServer,
  createMetricsServer,
  createReadinessServer,
  listenHttp,
  listenHttpUnix,
  type AdminInputs,
} from '../core/http-endpoints.js';
import { FlowRing } from '../core/flows/ring.js';
import { hostname } from 'node:os';
import { compileRoutingTable, type RoutingTable } from './routing/index.js';
import { WaypointPolicyCache } from './authz/index.js';
import { tcpPolicySource } from './authz/tcp.js';
import { WaypointHboneServer } from './tunnel/hbone-server.js';
import { UpstreamConnector } from './forward/connector.js';
import { UpstreamClients } from './forward/upstream-clients.js';
import { RequestHandler } from './server/request-handler.js';
import { WaypointTcpForwarder } from './server/tcp-forward.js';
import { TunnelDispatcher } from './server/dispatch.js';
import { UpgradeHandler } from './server/upgrade.js';
import { WaypointTelemetry } from './server/telemetry.js';
import { RouteStatusWriter, kubernetesRouteApi } from './status/route-status-writer.js';
import type { WaypointHandle, WaypointOptions } from './options.js';

/** On shutdown, requests in flight get this long to finish after clients were told to go elsewhere. */
const DRAIN_MS = 5_000;

export async function startWaypoint(options: WaypointOptions): Promise<WaypointHandle> {
  const log = componentLogger('waypoint');
  const waypoint = { namespace: options.namespace, name: options.name };
  const store = new ConfigStore();
  const source = createConfigSource(options.configSource);
  const caClient = options.caClient ?? new GrpcCaClient(options.ca);
  const certificates = new CertificateManager({
    caClient,
    trustDomain: options.trustDomain,
    ttlSeconds: options.certTtlSeconds,
    log: componentLogger('waypoint.identity'),
  });
  const selfId = formatSpiffeId({
    trustDomain: options.trustDomain,
    namespace: options.namespace,
    serviceAccount: options.serviceAccount,
  });
  const spiffeIdOf = (w: Workload): string =>
    formatSpiffeId({
      trustDomain: options.trustDomain,
      namespace: w.namespace,
      serviceAccount: w.serviceAccount,
    });
  const isMeshWorkload = (w: Workload): boolean =>
    !isTerminated(w) && isAmbientEnrolled(store.namespace(w.namespace), w);

  const registry = new Registry();
  registerCertificateMetrics(registry, certificates);
  const certificateReadiness = new CertificateReadiness(certificates);
  const flows = new FlowRing({
    reporter: { kind: 'waypoint', name: `${options.namespace}/${options.podName ?? hostname()}` },
    ...(options.flowBuffer !== undefined && { capacity: options.flowBuffer }),
  });
  const telemetry = new WaypointTelemetry({
    flows,
    registry,
    waypoint,
    store,
    trustDomain: options.trustDomain,
    otlpEndpoint: options.otlpEndpoint,
    log: componentLogger('waypoint.access'),
  });
  const pool = new HboneClientPool(componentLogger('waypoint.pool'));
  const connector = new UpstreamConnector({ pool, certificates, selfId, spiffeIdOf, isMeshWorkload });
  const clients = new UpstreamClients(connector);
  let table: RoutingTable | undefined;
  const routing = (): RoutingTable => {
    if (table === undefined || table.storeVersion !== store.version)
      table = compileRoutingTable(store, waypoint);
    return table;
  };
  const handler = new RequestHandler({
    store,
    waypoint,
    routing,
    policies: new WaypointPolicyCache(store),
    clients,
    log: componentLogger('waypoint.http'),
    observe: (o) => telemetry.request(o),
    startTrace: (req, tunnel) => telemetry.startTrace(req, tunnel),
  });
  const tcp = new WaypointTcpForwarder(
    store,
    waypoint,
    new WaypointPolicyCache(tcpPolicySource(store)),
    connector,
    componentLogger('waypoint.tcp'),
    (o) => telemetry.tcp(o),
  );
  const upgrades = new UpgradeHandler(handler, connector, componentLogger('waypoint.upgrade'));
  const dispatcher = new TunnelDispatcher(handler, tcp, log, (req, socket, head, tunnel) =>
    upgrades.handle(req, socket, head, tunnel),
  );

  const servers: Server[] = [];
  let ready: string | true = 'configuration not loaded yet';
  const adminInputs: AdminInputs = {
    configDump: () => ({
      waypoint,
      identity: selfId,
      configVersion: store.version,
      routes: routing().statuses,
      tunnels: { pooledConnections: pool.connectionCount, inboundSessions: hbone?.sessionCount ?? 0 },
      rejectedConfig: store.allRejections().map(formatRejection),
    }),
    certificates: () => ({ waypoint, certificates: certificates.status() }),
    flows,
  };
  const adminAddress = options.adminListen
    ? await listenHttp(push(servers, createAdminServer(adminInputs)), options.adminListen)
    : null;
  if (options.adminSocket !== undefined)
    await listenHttpUnix(push(servers, createAdminServer(adminInputs)), options.adminSocket);
  const metricsAddress = options.metricsListen
    ? await listenHttp(push(servers, createMetricsServer(registry)), options.metricsListen)
    : null;
  const readinessAddress = options.readinessListen
    ? await listenHttp(
        push(
          servers,
          // Once started, it stays ready through a CA outage until its certificate would expire.
          createReadinessServer(() => (ready === true ? certificateReadiness.isReady() : ready)),
        ),
        options.readinessListen,
      )
    : null;

  // Before the first config: a bad setting fails the start, and a leader with no routes yet writes nothing.
  const statusWriting = options.routeStatus && startRouteStatus(options, store, () => routing().statuses);
  await source.start(store);
  ready = 'no certificate yet';
  certificates.setWanted([selfId]);
  const cert = await certificates.fetch(selfId, Priority.RealTime);
  const hbone: WaypointHboneServer = new WaypointHboneServer(
    {
      store,
      waypoint,
      trustDomain: options.trustDomain,
      spiffeIdOf,
      onTunnel: (t) => dispatcher.dispatch(t),
      log: componentLogger('waypoint.hbone'),
    },
    cert,
  );
  certificates.on('certificate', (id: string, renewed) => {
    if (id === selfId) hbone.setCertificate(renewed as typeof cert);
  });
  const hboneAddress = await hbone.listen(options.hboneListen);
  ready = true;
  log.info(
    {
      waypoint: `${waypoint.namespace}/${waypoint.name}`,
      identity: selfId,
      config: source.description,
      hbone: formatHostPort(hboneAddress),
      metrics: metricsAddress && formatHostPort(metricsAddress),
      tracing: options.otlpEndpoint ?? 'off',
    },
    'waypoint ready',
  );

  return {
    hboneAddress,
    adminAddress,
    metricsAddress,
    readinessAddress,
    store,
    flows,
    async close() {
      ready = 'shutting down';
      hbone.stopAccepting();
      hbone.drain();
      const deadline = Date.now() + DRAIN_MS;
      while (hbone.sessionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      hbone.destroySessions();
      dispatcher.close();
      await statusWriting?.stop();
      await source.stop();
      await clients.close();
      pool.close();
      certificates.close();
      caClient.close();
      await telemetry.close();
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
    },
  };
}

/**
 * HTTPRoute status written by the leader of this waypoint's replicas (Lease `weft-waypoint-NAME` in the
 * waypoint's namespace). A new leader checks every route once.
 */
function startRouteStatus(
  options: WaypointOptions,
  store: ConfigStore,
  statuses: () => RoutingTable['statuses'],
): { stop(): Promise<void> } {
  const credentials = kubernetesCredentialsOf(options.configSource);
  if (credentials === undefined || options.routeStatus === undefined)
    throw new WeftError(
      'ERR_CONFIG_INVALID',
      `writing HTTPRoute status needs a kubernetes config source, not ${options.configSource}`,
      { field: 'route-status' },
    );
  const kubeConfig = loadKubeConfig(credentials.path, `waypoint ${options.namespace}/${options.name}`);
  const elector = new LeaderElector({
    kubeConfig,
    namespace: options.namespace,
    name: `weft-waypoint-${options.name}`,
    ...options.routeStatus,
  });
  const writer = new RouteStatusWriter({
    store,
    statuses,
    api: kubernetesRouteApi(kubeConfig),
    isLeader: () => elector.isLeader,
    log: componentLogger('waypoint.route-status'),
  });
  elector.on('leading', () => {
    writer.reset();
    writer.sync();
  });
  elector.start();
  return {
    async stop() {
      await writer.close();
      await elector.stop();
    },
  };
}

function push(servers: Server[], server: Server): Server {
  servers.push(server);
  return server;
}
