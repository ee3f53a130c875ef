// Wiring of the waypoint: config store and source, the waypoint's own certificate, the HBONE server, the
// HTTP and TCP paths, the upstream pool, and the HTTP endpoints. Decides nothing; returns a handle with
// the bound addresses, which tests use too.
import { lstatSync } from 'node:fs';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { componentLogger } from '../core/log.js';
import { formatHostPort } from '../core/address.js';
import { ConfigStore } from '../core/store.js';
import { createConfigSource } from '../core/sources/index.js';
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
import { DEFAULT_DRAIN_TIMINGS, WaypointDrain, type DrainReport } from './server/drain.js';
import { ListenerFactory } from './listeners.js';
import type { WaypointHandle, WaypointOptions } from './options.js';

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
  // The fixed ports are shared with a successor process when the addon allows (proxy/listeners.ts).
  const listeners = new ListenerFactory(log, options.sharePorts ?? true);
  let draining: Promise<DrainReport> | undefined;
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
    ? await listeners.listen(push(servers, createAdminServer(adminInputs)), options.adminListen)
    : null;
  // A successor takes the socket file over (listenHttpUnix replaces it); closing ours then would unlink
  // the successor's, so it is closed only while the file is still ours.
  let adminSocket: { server: Server; ino: number } | undefined;
  if (options.adminSocket !== undefined) {
    const server = createAdminServer(adminInputs);
    await listenHttpUnix(server, options.adminSocket);
    adminSocket = { server, ino: lstatSync(options.adminSocket).ino };
  }
  const metricsAddress = options.metricsListen
    ? await listeners.listen(push(servers, createMetricsServer(registry)), options.metricsListen)
    : null;
  const readinessAddress = options.readinessListen
    ? await listeners.listen(
        push(
          servers,
          // Once started, it stays ready through a CA outage until its certificate would expire.
          createReadinessServer(() =>
            draining ? 'draining' : ready === true ? certificateReadiness.isReady() : ready,
          ),
        ),
        options.readinessListen,
      )
    : null;

  // Before the first config: a bad setting fails the start, and a leader with no routes yet writes nothing.
  // Its module (and the Kubernetes client) loads only when route status is written.
  const statusWriting =
    options.routeStatus &&
    (await import('./status/route-status.js')).startRouteStatus(options, store, () => routing().statuses);
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
  const hboneAddress = await hbone.listen(options.hboneListen, listeners);
  listeners.checkMigrateReq([hboneAddress]);
  ready = true;
  log.info(
    {
      waypoint: `${waypoint.namespace}/${waypoint.name}`,
      identity: selfId,
      config: source.description,
      hbone: formatHostPort(hboneAddress),
      metrics: metricsAddress && formatHostPort(metricsAddress),
      tracing: options.otlpEndpoint ?? 'off',
      shared_ports: listeners.shared,
    },
    'waypoint ready',
  );

  const drain = (reason: string): Promise<DrainReport> => {
    draining ??= (async () => {
      log.info({ reason }, 'waypoint draining');
      return new WaypointDrain(
        { hbone, tunnels: dispatcher, log: componentLogger('waypoint.drain') },
        { ...DEFAULT_DRAIN_TIMINGS, ...options.drain },
      ).run();
    })();
    return draining;
  };

  return {
    hboneAddress,
    adminAddress,
    metricsAddress,
    readinessAddress,
    store,
    flows,
    drain,
    async close() {
      ready = 'shutting down';
      // Without a drain first (tests, a failed start): tunnels still open are cut here.
      hbone.drain();
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
      if (adminSocket !== undefined && options.adminSocket !== undefined) {
        if (socketInode(options.adminSocket) === adminSocket.ino) adminSocket.server.close();
        adminSocket.server.closeAllConnections();
      }
    },
  };
}

function socketInode(path: string): number | undefined {
  return lstatSync(path, { throwIfNoEntry: false })?.ino;
}

function push(servers: Server[], server: Server): Server {
  servers.push(server);
  return server;
}
