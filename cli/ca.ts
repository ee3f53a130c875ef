// `weft ca serve | token create | bundle`
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentLogger } from '../core/log.js';
import { DEFAULT_TRUST_DOMAIN } from '../core/spiffe.js';
import { ConfigStore } from '../core/store.js';
import { createConfigSource, kubernetesCredentialsOf, type ConfigSource } from '../core/sources/index.js';
import {
  startCa,
  DEFAULT_CA_HTTP_PORT,
  DEFAULT_CA_PORT,
  DEFAULT_WORKLOAD_TTL_S,
  MAX_WORKLOAD_TTL_S,
  type KubernetesCaOptions,
  type ObjectRef,
} from '../ca/main.js';
import { DEFAULT_ROOT_CONFIGMAP } from '../ca/kubernetes/root-publisher.js';
import {
  DEFAULT_TOKEN_AUDIENCE,
  DEFAULT_TRUSTED_NODE_ACCOUNTS,
} from '../ca/kubernetes/token-review-authenticator.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../ca/node-tokens.js';
import { SELF_SIGNED_FILES, PLUGIN_FILES } from '../ca/authority.js';
import {
  closeWithin,
  CLOSE_DEADLINE_MS,
  durationSecondsFlag,
  hostPortFlag,
  listFlag,
  parseFlags,
  replicaIdentityFlag,
  stringFlag,
  untilSignal,
  UsageError,
} from './flags.js';

export const CA_USAGE = `weft ca serve  --config file:DIR|kubernetes[:KUBECONFIG] [--dir DIR]
               [--trust-domain TD] [--listen HOST:PORT] [--http-listen HOST:PORT] [--plugin-certs DIR]
               [--default-ttl 24h] [--max-ttl 2160h] [--serving-dns a,b] [--serving-ip 127.0.0.1]
               [--auth node-tokens|kubernetes] [--token-audience istio-ca]
               [--trusted-node-accounts weft-system/weft-agent[,NS/SA]] [--root-secret NS/NAME]
               [--root-configmap NAME|off] [--leader-election NS/NAME] [--id ID] [--wait-for-ports]
    --wait-for-ports replaces a CA running on the same ports: it gets ready first, then takes each port
    as soon as the old one (sent SIGTERM, it finishes the calls under way) lets go of it.
    --auth kubernetes: callers send service-account tokens (checked by TokenReview); the trusted node
    accounts may ask for the identities of pods on their own node, any other account for its own only.
    With --config kubernetes[:KUBECONFIG] the root can live in a Secret, is published as a ConfigMap in
    every namespace (default weft-ca-root-cert), and --leader-election picks the replica that writes.
weft ca token create --dir DIR --node NODE     prints a new bootstrap token for NODE's agent
weft ca bundle [--dir DIR] [--plugin-certs DIR]  prints the trust bundle (PEM)`;

const DEFAULT_DIR = '.weft/ca';
/** --wait-for-ports: how often a held port is tried, and for how long. */
const PORT_RETRY_MS = 20;
const PORT_WAIT_TIMEOUT_MS = 60_000;
const AUTH_MODES = ['node-tokens', 'kubernetes'] as const;
/** Kubernetes object and namespace names (DNS labels and subdomains). */
const NAME_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** `--flag NS/NAME`, or undefined when absent. */
function objectRefFlag(values: Record<string, unknown>, name: string): ObjectRef | undefined {
  const v = values[name];
  if (typeof v !== 'string') return undefined;
  const [namespace = '', objectName = '', ...rest] = v.split('/');
  if (rest.length > 0 || !NAME_RE.test(namespace) || !NAME_RE.test(objectName))
    throw new UsageError(`--${name}: expected NAMESPACE/NAME, got ${JSON.stringify(v)}`);
  return { namespace, name: objectName };
}

/** `--trusted-node-accounts ns/sa,ns/sa`. */
function accountsFlag(values: Record<string, unknown>, name: string, fallback: readonly string[]): string[] {
  const accounts = listFlag(values, name, fallback);
  for (const account of accounts) {
    const [namespace = '', serviceAccount = '', ...rest] = account.split('/');
    if (rest.length > 0 || !NAME_RE.test(namespace) || !NAME_RE.test(serviceAccount))
      throw new UsageError(`--${name}: expected NAMESPACE/SERVICEACCOUNT, got ${JSON.stringify(account)}`);
  }
  if (accounts.length === 0) throw new UsageError(`--${name}: name at least one NAMESPACE/SERVICEACCOUNT`);
  return accounts;
}

/** The Kubernetes side of the CA, from the flags; undefined when --config is not Kubernetes. */
function kubernetesOptions(
  f: Record<string, string | boolean | undefined>,
  configSpec: string,
  auth: (typeof AUTH_MODES)[number],
): KubernetesCaOptions | undefined {
  const credentials = kubernetesCredentialsOf(configSpec);
  const kubeconfigPath = credentials === undefined ? null : credentials.path;
  const rootSecret = objectRefFlag(f, 'root-secret');
  const election = objectRefFlag(f, 'leader-election');
  if (kubeconfigPath === null) {
    const needsKubernetes = ['root-secret', 'root-configmap', 'leader-election'];
    const given = needsKubernetes.find((name) => f[name] !== undefined);
    if (auth === 'kubernetes' || given !== undefined)
      throw new UsageError(
        `${auth === 'kubernetes' ? '--auth kubernetes' : `--${given}`} needs --config kubernetes or kubernetes:KUBECONFIG`,
      );
    return undefined;
  }
  if (election === undefined && f.id !== undefined)
    throw new UsageError('--id applies to --leader-election only (it names this replica in the Lease)');
  if (rootSecret !== undefined && f['plugin-certs'] !== undefined)
    throw new UsageError(
      '--root-secret and --plugin-certs exclude each other: the root comes from one of them',
    );
  const configMap = stringFlag(f, 'root-configmap', DEFAULT_ROOT_CONFIGMAP);
  if (configMap !== 'off' && !NAME_RE.test(configMap))
    throw new UsageError(`--root-configmap: ${JSON.stringify(configMap)} is not a ConfigMap name`);
  return {
    kubeconfigPath,
    tokenReview:
      auth === 'kubernetes'
        ? {
            audience: stringFlag(f, 'token-audience', DEFAULT_TOKEN_AUDIENCE),
            trustedNodeAccounts: accountsFlag(f, 'trusted-node-accounts', DEFAULT_TRUSTED_NODE_ACCOUNTS),
          }
        : undefined,
    rootSecret,
    rootConfigMap: configMap === 'off' ? undefined : configMap,
    leaderElection: election && {
      ...election,
      identity: replicaIdentityFlag(f),
    },
  };
}

async function serve(argv: string[]): Promise<void> {
  const f = parseFlags(argv, {
    dir: { type: 'string' },
    config: { type: 'string' },
    'trust-domain': { type: 'string' },
    listen: { type: 'string' },
    'http-listen': { type: 'string' },
    'plugin-certs': { type: 'string' },
    'default-ttl': { type: 'string' },
    'max-ttl': { type: 'string' },
    'serving-dns': { type: 'string' },
    'serving-ip': { type: 'string' },
    auth: { type: 'string' },
    'token-audience': { type: 'string' },
    'trusted-node-accounts': { type: 'string' },
    'root-secret': { type: 'string' },
    'root-configmap': { type: 'string' },
    'leader-election': { type: 'string' },
    id: { type: 'string' },
    'wait-for-ports': { type: 'boolean' },
  });
  const log = componentLogger('ca');
  const configSpec = stringFlag(f, 'config');
  const auth = stringFlag(f, 'auth', 'node-tokens');
  if (!(AUTH_MODES as readonly string[]).includes(auth))
    throw new UsageError(`--auth: expected ${AUTH_MODES.join(' or ')}, got ${JSON.stringify(auth)}`);
  const authMode = auth as (typeof AUTH_MODES)[number];
  const tokenFlag = ['trusted-node-accounts', 'token-audience'].find((name) => f[name] !== undefined);
  if (authMode !== 'kubernetes' && tokenFlag !== undefined)
    throw new UsageError(`--${tokenFlag} applies to --auth kubernetes only`);
  const kubernetes = kubernetesOptions(f, configSpec, authMode);

  // Bootstrap-token callers are authorized from the config model: serve only once the first full config
  // is in. TokenReview callers are authorized through the API, so no pod informer is started.
  let store: ConfigStore | undefined;
  let source: ConfigSource | undefined;
  if (authMode === 'node-tokens') {
    store = new ConfigStore();
    source = createConfigSource(configSpec);
    await source.start(store);
  }
  const ca = await startCa({
    stateDir: stringFlag(f, 'dir', DEFAULT_DIR),
    pluginDir: typeof f['plugin-certs'] === 'string' ? f['plugin-certs'] : undefined,
    trustDomain: stringFlag(f, 'trust-domain', DEFAULT_TRUST_DOMAIN),
    grpcListen: hostPortFlag(f, 'listen', `127.0.0.1:${DEFAULT_CA_PORT}`),
    httpListen: hostPortFlag(f, 'http-listen', `127.0.0.1:${DEFAULT_CA_HTTP_PORT}`),
    defaultTtlSeconds: durationSecondsFlag(f, 'default-ttl', DEFAULT_WORKLOAD_TTL_S),
    maxTtlSeconds: durationSecondsFlag(f, 'max-ttl', MAX_WORKLOAD_TTL_S),
    servingDnsNames: listFlag(f, 'serving-dns', ['localhost', 'weft-ca.weft-system.svc']),
    servingIps: listFlag(f, 'serving-ip', ['127.0.0.1']),
    placement: store,
    kubernetes,
    waitForPorts:
      f['wait-for-ports'] === true ? { retryMs: PORT_RETRY_MS, timeoutMs: PORT_WAIT_TIMEOUT_MS } : undefined,
  });
  const sig = await untilSignal();
  log.info({ signal: sig }, 'ca stopping');
  await closeWithin(async () => {
    await ca.close();
    await source?.stop();
  }, CLOSE_DEADLINE_MS);
  process.exit(0);
}

function tokenCreate(argv: string[]): void {
  const f = parseFlags(argv, { dir: { type: 'string' }, node: { type: 'string' } });
  const token = createNodeToken(
    join(stringFlag(f, 'dir', DEFAULT_DIR), NODE_TOKENS_FILE),
    stringFlag(f, 'node'),
  );
  process.stdout.write(`${token}\n`);
}

function bundle(argv: string[]): void {
  const f = parseFlags(argv, { dir: { type: 'string' }, 'plugin-certs': { type: 'string' } });
  const plugin = f['plugin-certs'];
  const file =
    typeof plugin === 'string'
      ? join(plugin, PLUGIN_FILES.root)
      : join(stringFlag(f, 'dir', DEFAULT_DIR), SELF_SIGNED_FILES.cert);
  process.stdout.write(readFileSync(file, 'utf8'));
}

export async function caCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'serve') return serve(rest);
  if (sub === 'token' && rest[0] === 'create') return tokenCreate(rest.slice(1));
  if (sub === 'bundle') return bundle(rest);
  throw new UsageError(CA_USAGE);
}
