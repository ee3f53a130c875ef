// Wiring of the mesh CA: signing authority, caller authentication, node authorization, the gRPC
// certificate service over TLS, and a small HTTP endpoint for the trust bundle and health. On Kubernetes
// also: TokenReview callers with placement read through the API, the root in a Secret, leader election,
// and the root published as a ConfigMap in every namespace. Decides nothing itself; returns a handle
// with the bound addresses, which tests use too.
//
// Start order: the HTTP endpoint first (live at once, ready only when the CA serves), then leader
// election (it decides who creates a missing root Secret), the authority, the gRPC server, and last the
// root publisher.
import { createServer, type Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { caServiceDefinition } from '../core/ca-api.js';
import { componentLogger } from '../core/log.js';
import { listenHttp, whenPortFree, type PortWait } from '../core/http-endpoints.js';
import { errorMessage } from '../core/errors.js';
import { formatHostPort, type HostPort } from '../core/address.js';
import { exportPkcs8Pem, generateP256KeyPair } from '../core/x509.js';
import { loadKubeConfig } from '../core/kubernetes/config.js';
import { LeaderElector } from '../core/kubernetes/leader-election.js';
import { ConfigStore } from '../core/store.js';
import type { ConfigSource } from '../core/sources/index.js';
import { KubernetesSource } from '../core/sources/kubernetes.js';
import { fileAuthoritySource, type AuthoritySource, type SigningAuthority } from './authority.js';
import type { CallerAuthenticator } from './caller.js';
import { BootstrapTokenAuthenticator, NODE_TOKENS_FILE } from './node-tokens.js';
import { NodeAuthorizer, type PodPlacement } from './node-authorizer.js';
import { CertificateService } from './certificate-service.js';
import { issueServingCertificate } from './issuer.js';
import { ApiPodPlacement } from './kubernetes/pod-placement.js';
import { TokenReviewAuthenticator } from './kubernetes/token-review-authenticator.js';
import { RootSecretSource } from './kubernetes/root-secret.js';
import { RootCertPublisher } from './kubernetes/root-publisher.js';

export {
  DEFAULT_CA_PORT,
  DEFAULT_CA_HTTP_PORT,
  DEFAULT_WORKLOAD_TTL_S,
  MAX_WORKLOAD_TTL_S,
} from './defaults.js';
/** The serving certificate is re-issued on every start, so a year never needs rotation in practice. */
const SERVING_CERT_TTL_S = 365 * 24 * 3600;
/** A CSR request is ~1 KiB; anything far larger is refused before parsing. */
const MAX_REQUEST_BYTES = 64 * 1024;
/** After a Namespace source failed to start (it already retried for minutes), the pause before a new one. */
const NAMESPACE_SOURCE_RETRY_MS = 30_000;

/** A namespaced object named on the command line as NS/NAME. */
export interface ObjectRef {
  readonly namespace: string;
  readonly name: string;
}

export interface CaLeaderElectionOptions extends ObjectRef {
  /** This replica's holder identity (the pod name). */
  readonly identity: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
}

/** The CA on Kubernetes; each part is on only when its option is set. */
export interface KubernetesCaOptions {
  /** A kubeconfig file; undefined for the pod's in-cluster service account. */
  readonly kubeconfigPath: string | undefined;
  /** Callers authenticate with service-account tokens checked by TokenReview (instead of node tokens). */
  readonly tokenReview?: {
    readonly audience: string;
    /** `namespace/serviceaccount` of node agents, which may act for the pods on their own node. */
    readonly trustedNodeAccounts: readonly string[];
  };
  /** The root lives in this Secret (created by the leader when missing) instead of the state dir. */
  readonly rootSecret?: ObjectRef;
  /** The root certificate is published as this ConfigMap (key root-cert.pem) in every namespace. */
  readonly rootConfigMap?: string;
  /** With several replicas: only the Lease's holder creates the root Secret and publishes ConfigMaps. */
  readonly leaderElection?: CaLeaderElectionOptions;
  /** Bound on each API call (TokenReview, pod reads, Secret and ConfigMap writes). */
  readonly apiTimeoutMs?: number;
  /** How long a replica waits for another's root Secret before giving up. */
  readonly rootWaitMs?: number;
}

export interface CaOptions {
  readonly stateDir: string;
  readonly pluginDir?: string | undefined;
  readonly trustDomain: string;
  readonly grpcListen: HostPort;
  /** Trust bundle and health over plain HTTP; null to disable. */
  readonly httpListen: HostPort | null;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  /** Names the serving certificate carries, so agents can verify the CA by DNS name or IP. */
  readonly servingDnsNames: readonly string[];
  readonly servingIps: readonly string[];
  /**
   * Where pods run, for node agents authenticated by bootstrap tokens: the config store in production,
   * anything with the same contract in tests. With TokenReview callers the API answers instead.
   */
  readonly placement?: PodPlacement | undefined;
  /** Defaults to bootstrap tokens from `<stateDir>/node-tokens` (or TokenReview, see `kubernetes`). */
  readonly authenticator?: CallerAuthenticator;
  readonly kubernetes?: KubernetesCaOptions | undefined;
  /**
   * Replacing a running CA on the same ports: get everything ready (root, serving certificate) first,
   * then take each port as soon as the CA being replaced lets go of it (retried every `retryMs`, for at
   * most `timeoutMs`). The gap between the two is the old one's shutdown and one retry.
   */
  readonly waitForPorts?: PortWait | undefined;
}

export interface CaHandle {
  readonly grpcAddress: HostPort;
  readonly httpAddress: HostPort | null;
  readonly authority: SigningAuthority;
  /** The leader elector, when leader election is on. */
  readonly elector: LeaderElector | undefined;
  close(): Promise<void>;
}

/** What the HTTP endpoint reports; the authority arrives once loaded. */
interface HttpState {
  authority: SigningAuthority | undefined;
  /** Why the CA is not ready, or undefined once it serves. */
  notReady: string | undefined;
}

function serveHttp(state: HttpState): HttpServer {
  return createServer((req, res) => {
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET') return send(404, 'text/plain', 'not found\n');
    switch (req.url) {
      case '/trust-bundle':
        return state.authority === undefined
          ? send(503, 'text/plain', 'no root loaded yet\n')
          : send(200, 'application/x-pem-file', state.authority.rootsPem);
      case '/healthz/ready':
        return state.notReady === undefined
          ? send(200, 'text/plain', 'ready\n')
          : send(503, 'text/plain', `not ready: ${state.notReady}\n`);
      case '/healthz/live':
        return send(200, 'text/plain', 'live\n');
      default:
        return send(404, 'text/plain', 'not found\n');
    }
  });
}

/** The parts that run only on Kubernetes, built from KubernetesCaOptions. */
interface KubernetesParts {
  readonly elector: LeaderElector | undefined;
  readonly authenticator: CallerAuthenticator | undefined;
  /** With TokenReview callers: placement asked of the API server. */
  readonly placement: PodPlacement | undefined;
  readonly authoritySource: AuthoritySource | undefined;
  /** Starts publishing once the root is known; undefined when not publishing. */
  readonly publish: ((rootPem: string) => void) | undefined;
  stop(): Promise<void>;
}

function kubernetesParts(options: KubernetesCaOptions, trustDomain: string): KubernetesParts {
  const kubeConfig = loadKubeConfig(options.kubeconfigPath, 'the CA');
  const timeoutMs = options.apiTimeoutMs;
  const election = options.leaderElection;
  const elector = election && new LeaderElector({ kubeConfig, ...election });
  const tokenReview = options.tokenReview;
  const placement = tokenReview && new ApiPodPlacement({ kubeConfig, timeoutMs });
  const authenticator =
    tokenReview &&
    placement &&
    new TokenReviewAuthenticator({ kubeConfig, ...tokenReview, pods: placement, timeoutMs });
  const rootSecret = options.rootSecret;
  const authoritySource =
    rootSecret &&
    new RootSecretSource({
      kubeConfig,
      ...rootSecret,
      trustDomain,
      elector,
      timeoutMs,
      waitMs: options.rootWaitMs,
      log: componentLogger('ca.root-secret'),
    });
  let source: ConfigSource | undefined;
  let publisher: RootCertPublisher | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const publishLog = componentLogger('ca.root-publisher');
  // Namespaces for the publisher; a source that cannot start (the API server away for minutes) is
  // replaced by a new one after a pause, so publishing resumes without a restart.
  const watchNamespaces = (namespaces: ConfigStore): void => {
    const current = new KubernetesSource({ kubeconfigPath: options.kubeconfigPath, kinds: ['Namespace'] });
    source = current;
    current.start(namespaces).catch(async (err: unknown) => {
      publishLog.error(
        { error: errorMessage(err), retry_ms: NAMESPACE_SOURCE_RETRY_MS },
        'root publisher: cannot list namespaces; trying again',
      );
      await current.stop();
      if (!stopped) retry = setTimeout(watchNamespaces, NAMESPACE_SOURCE_RETRY_MS, namespaces);
    });
  };
  const configMapName = options.rootConfigMap;
  const publish =
    configMapName === undefined
      ? undefined
      : (rootPem: string): void => {
          const namespaces = new ConfigStore();
          publisher = new RootCertPublisher({
            kubeConfig,
            configMapName,
            rootPem,
            namespaces,
            elector,
            timeoutMs,
            log: publishLog,
          });
          publisher.start();
          // A background duty: the CA serves while the namespaces are still being listed.
          watchNamespaces(namespaces);
        };
  elector?.start();
  return {
    elector,
    authenticator,
    placement,
    authoritySource,
    publish,
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await publisher?.stop();
      await source?.stop();
      await elector?.stop();
    },
  };
}

export async function startCa(options: CaOptions): Promise<CaHandle> {
  const log = componentLogger('ca');
  const kube = options.kubernetes && kubernetesParts(options.kubernetes, options.trustDomain);
  const authoritySource =
    kube?.authoritySource ??
    fileAuthoritySource({
      stateDir: options.stateDir,
      pluginDir: options.pluginDir,
      trustDomain: options.trustDomain,
    });
  const state: HttpState = {
    authority: undefined,
    notReady: `loading the root from ${authoritySource.description}`,
  };

  let http: HttpServer | null = null;
  let httpAddress: HostPort | null = null;
  let server: grpc.Server | undefined;
  const stopAll = async (): Promise<void> => {
    if (server) await new Promise<void>((resolve) => server?.tryShutdown(() => resolve()));
    await kube?.stop();
    if (http) {
      http.close();
      http.closeAllConnections();
    }
  };

  // A successor takes each port when its predecessor lets go (--wait-for-ports); else at once.
  const whenFree = <T>(addr: HostPort, listen: () => Promise<T>): Promise<T> =>
    options.waitForPorts ? whenPortFree(listen, addr, log, options.waitForPorts) : listen();
  const listenHttpPort = async (): Promise<void> => {
    const listenAt = options.httpListen;
    if (!listenAt) return;
    const server = serveHttp(state);
    http = server;
    httpAddress = await whenFree(listenAt, () => listenHttp(server, listenAt));
  };

  try {
    // Health answers "loading" while the root loads, unless a CA being replaced still answers it.
    if (!options.waitForPorts) await listenHttpPort();

    const authority = await authoritySource.load();
    state.authority = authority;
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
        kube?.authenticator ??
        new BootstrapTokenAuthenticator(
          join(options.stateDir, NODE_TOKENS_FILE),
          componentLogger('ca.node-tokens'),
        ),
      authorizer: new NodeAuthorizer(options.trustDomain, kube?.placement ?? options.placement),
      defaultTtlSeconds: options.defaultTtlSeconds,
      maxTtlSeconds: options.maxTtlSeconds,
      log: componentLogger('ca.certificate-service'),
    });
    server = new grpc.Server({
      'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
      'grpc.max_concurrent_streams': 100,
    });
    server.addService(caServiceDefinition(), service.handlers());
    const grpcServer = server;
    if (options.waitForPorts) {
      log.info({ grpc: formatHostPort(options.grpcListen) }, 'ca prepared; taking the ports when free');
      await listenHttpPort();
    }
    const grpcPort = await whenFree(
      options.grpcListen,
      () =>
        new Promise<number>((resolve, reject) =>
          grpcServer.bindAsync(formatHostPort(options.grpcListen), credentials, (err, port) =>
            err ? reject(err) : resolve(port),
          ),
        ),
    );
    const grpcAddress = { host: options.grpcListen.host, port: grpcPort };
    kube?.publish?.(authority.rootsPem);
    state.notReady = undefined;
    log.info(
      { grpc: formatHostPort(grpcAddress), http: httpAddress && formatHostPort(httpAddress) },
      'ca serving',
    );
    return { grpcAddress, httpAddress, authority, elector: kube?.elector, close: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
