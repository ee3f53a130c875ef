// `weft ca serve | token create | bundle`
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { componentLogger } from '../core/log.js';
import { DEFAULT_TRUST_DOMAIN } from '../core/spiffe.js';
import { ConfigStore } from '../core/store.js';
import { createConfigSource } from '../core/sources/index.js';
import {
  startCa,
  DEFAULT_CA_HTTP_PORT,
  DEFAULT_CA_PORT,
  DEFAULT_WORKLOAD_TTL_S,
  MAX_WORKLOAD_TTL_S,
} from '../ca/main.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../ca/node-tokens.js';
import { SELF_SIGNED_FILES, PLUGIN_FILES } from '../ca/authority.js';
import {
  closeWithin,
  CLOSE_DEADLINE_MS,
  durationSecondsFlag,
  hostPortFlag,
  listFlag,
  parseFlags,
  stringFlag,
  untilSignal,
  UsageError,
} from './flags.js';

export const CA_USAGE = `weft ca serve  [--dir DIR] [--config file:DIR] [--trust-domain TD] [--listen HOST:PORT]
               [--http-listen HOST:PORT] [--plugin-certs DIR] [--default-ttl 24h] [--max-ttl 2160h]
               [--serving-dns a,b] [--serving-ip 127.0.0.1]
weft ca token create --dir DIR --node NODE     prints a new bootstrap token for NODE's agent
weft ca bundle [--dir DIR] [--plugin-certs DIR]  prints the trust bundle (PEM)`;

const DEFAULT_DIR = '.weft/ca';

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
  });
  const log = componentLogger('ca');
  const store = new ConfigStore();
  const source = createConfigSource(stringFlag(f, 'config'));
  // Authorization needs to know where pods run: serve only once the first full config is in.
  await source.start(store);
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
  });
  const sig = await untilSignal();
  log.info({ signal: sig }, 'ca stopping');
  await closeWithin(async () => {
    await ca.close();
    await source.stop();
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
