// Wiring of the node agent: config store and source, certificates for this node's pods, the HBONE
// server, the outbound proxy and its entry points, policy re-checks on config change, and the HTTP
// endpoints. Decides nothing; returns a handle with the bound addresses, which tests use too.
import { lstatSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { Registry } from 'prom-client';
import { componentLogger } from '../core/log.js';
import { formatHostPort, type HostPort } from '../core/address.js';
import { ConfigStore, type AppliedChange } from '../core/store.js';
import { createConfigSource } from '../core/sources/index.js';
import { formatRejection } from '../core/convert/index.js';
import { TcpMetrics } from '../core/telemetry/tcp-metrics.js';
import { GrpcCaClient, type CaClient, type GrpcCaClientOptions } from '../core/identity/ca-client.js';
import { CertificateManager } from '../core/identity/manager.js';
import { CertificateCache } from '../core/identity/certificate-cache.js';
import { registerCertificateMetrics } from '../core/identity/certificate-metrics.js';
import { CertificateReadiness } from '../core/identity/certificate-readiness.js';
import { identitiesForNode } from './identity/node-identities.js';
import {
  createAdminServer,
  createMetricsServer,
  type AdminInputs,
  createReadinessServer,
  listenHttp,
  listenHttpUnix,
  listenWhenFree,
} from '../core/http-endpoints.js';
import { FlowRing } from '../core/flows/ring.js';
import { LocalWorkloads } from './workloads.js';
import { LocalChanges } from './local-changes.js';
import { AGENT_KINDS } from './kinds.js';
import { PolicyAuthorizer } from './authorizer.js';
import { ConnectionRegistry } from './connections.js';
import { DEFAULT_AGENT_PORTS, HboneInbound } from './inbound.js';
import { HboneClientPool } from '../core/hbone/client-pool.js';
import { OutboundProxy } from './outbound.js';
import { Socks5Server } from './socks5.js';
import { plainDialer } from './socket.js';
import { tuneSocket } from '../core/tcp.js';
import { createServer as netCreateServer } from 'node:net';
import { Gauge } from 'prom-client';
import { systemClock } from '../core/clock.js';
import { Capture, markedDialer, type PublishedListeners } from './capture.js';
import { EnrolmentController } from './enrolment.js';
import { PlaintextInbound } from './inbound-plaintext.js';
import { unmapIpv4 } from '../core/address.js';
import {
  ConnectionBudget,
  DEFAULT_CONNECTION_LIMITS,
  survivingAcceptErrors,
  type ConnectionLimits,
} from './connection-budget.js';
import { ConnectionDrain, DEFAULT_DRAIN_TIMINGS, type DrainReport, type DrainTimings } from './drain.js';
import type { Socket } from 'node:net';

export const DEFAULT_ADMIN_PORT = 15000;
export const DEFAULT_METRICS_PORT = 15020;
export const DEFAULT_READINESS_PORT = 15021;
/** How often capture looks for new pod interfaces (a new pod's first connection may come right away). */
const INTERFACE_SCAN_MS = 500;
/** How often an agent checks whether a successor took over steering. */
const TAKEOVER_CHECK_MS = 100;
/**
 * After a takeover, the old listeners keep accepting this long: connections the kernel queued on them
 * before the successor was published are served, not reset by closing the listener.
 */
const TAKEOVER_LINGER_MS = 1000;

export interface AgentOptions {
  readonly nodeName: string;
  readonly trustDomain: string;
  /** `file:DIR` (or, later, `kubernetes`). */
  readonly configSource: string;
  readonly ca: GrpcCaClientOptions;
  readonly certTtlSeconds: number;
  /** Cap on the certificate retry backoff (default ztunnel's 150 s); tests shorten it to bound their waits. */
  readonly certMaxBackoffMs?: number;
  readonly adminListen: HostPort;
  /** The admin endpoints also on this Unix socket (the lab's: reachable from outside the node's netns). */
  readonly adminSocket?: string;
  /** Flow events kept for `/flows` (default DEFAULT_FLOW_RING_CAPACITY). */
  readonly flowBuffer?: number;
  /** null disables a listener (tests that need only part of the agent). */
  readonly metricsListen: HostPort | null;
  readonly readinessListen: HostPort | null;
  readonly hboneListen: HostPort | null;
  readonly socksListen: HostPort | null;
  /** Transparent capture (root, eBPF); null runs without it (SOCKS5 entry only). */
  readonly capture: { readonly pinDir: string; readonly bpffs: string } | null;
  /** Tests may pass their own CA client; by default a GrpcCaClient from `ca`. */
  readonly caClient?: CaClient;
  /**
   * Where workload certificates and their keys are kept across restarts, on a memory filesystem (see
   * core/identity/certificate-cache.ts): a restarted agent serves before the CA answers. Without it,
   * every start waits for the CA.
   */
  readonly certCacheDir?: string;
  /** Connection bounds per agent and per workload (default DEFAULT_CONNECTION_LIMITS). */
  readonly connectionLimits?: Partial<ConnectionLimits>;
  /** How a drain (takeover by a successor, or shutdown) ends the open connections. */
  readonly drain?: Partial<DrainTimings>;
}

export interface AgentHandle {
  readonly adminAddress: HostPort;
  readonly metricsAddress: HostPort | null;
  readonly readinessAddress: HostPort | null;
  readonly hboneAddress: HostPort | null;
  readonly socksAddress: HostPort | null;
  readonly store: ConfigStore;
  readonly certificates: CertificateManager;
  readonly connections: ConnectionRegistry;
  readonly pool: HboneClientPool;
  readonly flows: FlowRing;
  /**
   * Stops accepting, asks HBONE peers to move on, and lets the open connections end (or ends them, see
   * agent/drain.ts). Started by itself when a successor agent takes over steering; idempotent.
   */
  drain(reason: string): Promise<DrainReport>;
  close(): Promise<void>;
}

/** The BPF counters as a gauge read at scrape time (they are kernel-side totals). */
function registerCaptureMetrics(registry: Registry, capture: Capture): void {
  new Gauge({
    name: 'weft_capture_packets',
    help: 'eBPF capture counters (packets), by counter',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      for (const [counter, value] of Object.entries(capture.stats())) this.set({ counter }, value);
    },
  });
}

export async function startAgent(options: AgentOptions): Promise<AgentHandle> {
  const log = componentLogger('agent');
  const store = new ConfigStore();
  // Every pod, not only this node's: destinations are found by IP anywhere in the cluster (is it
  // enrolled, which identity, which node). HTTPRoutes are the waypoint's business.
  const source = createConfigSource(options.configSource, { kubernetes: { kinds: AGENT_KINDS } });
  const caClient = options.caClient ?? new GrpcCaClient(options.ca);
  const certCache =
    options.certCacheDir === undefined
      ? undefined
      : CertificateCache.open({ dir: options.certCacheDir, log: componentLogger('agent.identity') });
  const certificates = new CertificateManager({
    caClient,
    trustDomain: options.trustDomain,
    ttlSeconds: options.certTtlSeconds,
    log: componentLogger('agent.identity'),
    ...(options.certMaxBackoffMs !== undefined && { maxBackoffMs: options.certMaxBackoffMs }),
    ...(certCache && { cache: certCache }),
  });
  // Before anything serves or the first setWanted: cached certificates serve at once, CA or not.
  if (certCache) await certificates.restore(readFileSync(options.ca.rootCertFile, 'utf8'));
  const registry = new Registry();
  const metrics = new TcpMetrics(registry);
  registerCertificateMetrics(registry, certificates);
  const certificateReadiness = new CertificateReadiness(certificates);
  const flows = new FlowRing({
    reporter: { kind: 'agent', name: options.nodeName },
    ...(options.flowBuffer !== undefined && { capacity: options.flowBuffer }),
  });
  const budget = new ConnectionBudget(
    { ...DEFAULT_CONNECTION_LIMITS, ...options.connectionLimits },
    registry,
    componentLogger('agent.limits'),
  );
  const local = new LocalWorkloads(store, options.nodeName, options.trustDomain);
  const authorizer = new PolicyAuthorizer(store);
  const connections = new ConnectionRegistry(store, authorizer, componentLogger('agent.connections'));
  const pool = new HboneClientPool(componentLogger('agent.pool'));
  // Capture first: where the kernel cannot capture, the agent refuses to start rather than let an
  // enrolled pod's traffic go out in plaintext.
  const capture = options.capture
    ? await Capture.start(options.capture, componentLogger('agent.capture'))
    : null;
  // Without capture the agent dials from its own address; with it, transparently and marked.
  const dial = capture ? markedDialer : plainDialer;
  const agentPorts = new Set<number>([
    ...DEFAULT_AGENT_PORTS,
    ...[
      options.adminListen,
      options.metricsListen,
      options.readinessListen,
      options.hboneListen,
      options.socksListen,
    ]
      .filter((a): a is HostPort => a !== null)
      .map((a) => a.port),
  ]);
  const inbound = new HboneInbound({
    agentPorts,
    budget,
    dial,
    local,
    certificates,
    authorizer,
    connections,
    metrics,
    flows,
    log: componentLogger('agent.inbound'),
  });
  const outbound = new OutboundProxy({
    dial,
    budget,
    ...(capture && { sameNode: inbound.deliverLocal.bind(inbound) }),
    local,
    certificates,
    pool,
    metrics,
    flows,
    log: componentLogger('agent.outbound'),
  });
  const socks = new Socks5Server(outbound, componentLogger('agent.socks5'));
  const plaintext = new PlaintextInbound({
    local,
    budget,
    authorizer,
    connections,
    metrics,
    flows,
    dial,
    agentPorts,
    log: componentLogger('agent.inbound-plaintext'),
  });
  const enrolment = capture
    ? new EnrolmentController(local, capture.table(), systemClock, componentLogger('agent.enrolment'))
    : null;
  if (capture) registerCaptureMetrics(registry, capture);
  let configLoaded = false;

  // On every config change: keep certificates for exactly this node's enrolled pods, and close live
  // connections that policy now denies.
  let draining: Promise<DrainReport> | undefined;
  const localChanges = new LocalChanges(store, options.nodeName);
  const onApplied = (_version?: number, change?: AppliedChange): void => {
    // Everything below reads only this node's pods, their namespaces and policies.
    if (!localChanges.affectsThisNode(change)) return;
    certificates.setWanted(identitiesForNode(store, options.nodeName, options.trustDomain));
    connections.recheck();
    inbound.prune();
    // The kernel state belongs to the successor once a drain began.
    if (draining) return;
    void capture?.attachInterfaces();
    enrolment?.sync();
  };
  store.on('applied', onApplied);

  const servers: Server[] = [];
  const adminInputs: AdminInputs = {
    configDump: () => ({
      node: options.nodeName,
      configVersion: store.version,
      workloads: [...store.workloadsOnNode(options.nodeName)].map((w) => ({
        uid: w.uid,
        namespace: w.namespace,
        name: w.name,
        serviceAccount: w.serviceAccount,
        ips: w.podIps,
        phase: w.phase,
        enrolled: local.owning(w.podIps[0] ?? '') !== undefined,
      })),
      certificates: certificates.status().map(({ certChainPem: _pem, ...rest }) => rest),
      tunnels: {
        pooledConnections: pool.connectionCount,
        inboundConnections: connections.size,
        inbound: connections.describe(),
      },
      rejectedConfig: store.allRejections().map(formatRejection),
      capture: capture && { enrolled: enrolment?.snapshot(), counters: capture.stats() },
    }),
    certificates: () => ({ node: options.nodeName, certificates: certificates.status() }),
    flows,
  };
  // With capture, a fixed port may still be held by the agent this one replaces: wait for it instead of
  // failing (it lets go once this one has taken over steering).
  const listenFixed = (server: Server, addr: HostPort): Promise<HostPort> =>
    options.capture && addr.port !== 0
      ? Promise.resolve(listenWhenFree(server, addr, log))
      : listenHttp(server, addr);
  const fixedServers: Server[] = [];
  // Closing a Unix socket server removes its path: after a handover that path is the successor's.
  let unixAdminSocket: { server: Server; path: string; ino: number } | undefined;
  const admin = createAdminServer(adminInputs);
  servers.push(admin);
  fixedServers.push(admin);
  const adminAddress = await listenFixed(admin, options.adminListen);
  if (options.adminSocket !== undefined) {
    const unixAdmin = createAdminServer(adminInputs);
    await listenHttpUnix(unixAdmin, options.adminSocket);
    unixAdminSocket = {
      server: unixAdmin,
      path: options.adminSocket,
      ino: lstatSync(options.adminSocket).ino,
    };
  }
  let metricsAddress: HostPort | null = null;
  if (options.metricsListen) {
    const s = createMetricsServer(registry);
    servers.push(s);
    fixedServers.push(s);
    metricsAddress = await listenFixed(s, options.metricsListen);
  }
  let readinessAddress: HostPort | null = null;
  if (options.readinessListen) {
    const s = createReadinessServer(() =>
      draining ? 'draining' : configLoaded ? certificateReadiness.isReady() : 'configuration not loaded yet',
    );
    servers.push(s);
    fixedServers.push(s);
    readinessAddress = await listenFixed(s, options.readinessListen);
  }

  await source.start(store);
  configLoaded = true;
  onApplied();
  // With capture, HBONE arrives on the transparent :15008 (steered by the kernel, local address = the
  // pod's); a plain listener on the same port would only collide with it.
  const hboneAddress =
    options.hboneListen && !capture
      ? await inbound.listen(options.hboneListen.host, options.hboneListen.port)
      : null;
  const socksAddress = !options.socksListen
    ? null
    : options.capture && options.socksListen.port !== 0
      ? socks.listenWhenFree(options.socksListen, log)
      : await socks.listen(options.socksListen);
  const captureServers: Server[] = [];
  /** Captured application sockets (outbound), for the drain. */
  const appSockets = new Set<Socket>();
  const trackApp = (socket: Socket): void => {
    appSockets.add(socket);
    socket.once('close', () => appSockets.delete(socket));
  };
  let published: PublishedListeners | undefined;
  let takeoverWatch: NodeJS.Timeout | undefined;
  if (capture) {
    const fds = capture.listen();
    // Captured sockets face the application: tuned like every proxied socket (above all no Nagle, or a
    // response written in two pieces waits for the application's next ACK).
    const outboundServer = netCreateServer({ allowHalfOpen: true }, (s) => {
      tuneSocket(s);
      trackApp(s);
      outbound.handle(s, { ip: unmapIpv4(s.localAddress), port: s.localPort ?? 0 });
    });
    const plaintextServer = netCreateServer({ allowHalfOpen: true }, (s) => {
      tuneSocket(s);
      plaintext.handle(s);
    });
    survivingAcceptErrors(outboundServer, 'outbound capture', log);
    survivingAcceptErrors(plaintextServer, 'plaintext capture', log);
    await new Promise<void>((resolve) => outboundServer.listen({ fd: fds.outbound }, resolve));
    await new Promise<void>((resolve) => plaintextServer.listen({ fd: fds.plaintext }, resolve));
    await inbound.listenFd(fds.hbone);
    captureServers.push(outboundServer as unknown as Server, plaintextServer as unknown as Server);
    // Only now, with every listener serving, does the kernel start steering new connections to them (and
    // no longer to the agent this one replaces, which sees it and drains).
    published = capture.publish(fds);
    capture.watchInterfaces(INTERFACE_SCAN_MS);
    const ours = published;
    takeoverWatch = setInterval(() => {
      if (draining) return;
      const now = capture.publishedListeners();
      if (now.outbound === ours.outbound && now.plaintext === ours.plaintext && now.hbone === ours.hbone)
        return;
      void drain('a successor agent took over steering');
    }, TAKEOVER_CHECK_MS);
    takeoverWatch.unref();
  }
  const socksServer = socks;

  const drain = (reason: string): Promise<DrainReport> => {
    draining ??= (async () => {
      log.info({ reason }, 'agent draining');
      clearInterval(takeoverWatch);
      enrolment?.close();
      capture?.close();
      // The fixed ports go first, so a successor waiting for them binds them (its readiness included).
      for (const s of fixedServers) s.close();
      // Connections the kernel queued on our listeners before a successor's publication are still ours.
      if (published) await new Promise((resolve) => setTimeout(resolve, TAKEOVER_LINGER_MS));
      socksServer.close();
      for (const s of captureServers) s.close();
      void inbound.drain();
      pool.close();
      const report = await new ConnectionDrain(
        {
          appSockets: function* () {
            for (const socket of appSockets)
              yield { socket, peer: 'client' as const, exchange: outbound.exchangeOf(socket) };
            for (const { socket, exchange } of connections.workloadSockets())
              yield { socket, peer: 'server' as const, exchange };
          },
          pending: () => connections.dialling + inbound.sessionCount,
          log,
        },
        { ...DEFAULT_DRAIN_TIMINGS, ...options.drain },
      ).run();
      return report;
    })();
    return draining;
  };
  log.info(
    {
      node: options.nodeName,
      config: source.description,
      admin: formatHostPort(adminAddress),
      hbone: hboneAddress && formatHostPort(hboneAddress),
      socks5: socksAddress && formatHostPort(socksAddress),
      metrics: metricsAddress && formatHostPort(metricsAddress),
    },
    'agent ready',
  );

  return {
    adminAddress,
    metricsAddress,
    readinessAddress,
    hboneAddress,
    socksAddress,
    store,
    certificates,
    connections,
    pool,
    flows,
    drain,
    async close() {
      clearInterval(takeoverWatch);
      await source.stop();
      store.off('applied', onApplied);
      socks.close();
      enrolment?.close();
      capture?.close();
      for (const s of captureServers) s.close();
      await inbound.close();
      pool.close();
      certificates.close();
      caClient.close();
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
      if (unixAdminSocket) {
        const { server, path, ino } = unixAdminSocket;
        server.closeAllConnections();
        if (lstatSync(path, { throwIfNoEntry: false })?.ino === ino) server.close();
      }
    },
  };
}
