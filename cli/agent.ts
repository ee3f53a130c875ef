// `weft agent run`
import { componentLogger } from '../core/log.js';
import { DEFAULT_TRUST_DOMAIN } from '../core/spiffe.js';
import {
  startAgent,
  DEFAULT_ADMIN_PORT,
  DEFAULT_METRICS_PORT,
  DEFAULT_READINESS_PORT,
} from '../agent/main.js';
import { SOCKS5_PORT } from '../agent/socks5.js';
import { DEFAULT_DRAIN_TIMINGS } from '../agent/drain.js';
import { DEFAULT_CONNECTION_LIMITS } from '../agent/connection-budget.js';
import { DEFAULT_PIN_DIR } from '../ebpf-redirect/index.js';
import { HBONE_PORT } from '../core/hbone/settings.js';
import { DEFAULT_CA_PORT, DEFAULT_WORKLOAD_TTL_S } from '../ca/defaults.js';
import {
  CA_CLIENT_FLAGS,
  caClientFlags,
  closeWithin,
  countFlag,
  CLOSE_DEADLINE_MS,
  durationMsFlag,
  durationSecondsFlag,
  FLOW_FLAGS,
  FLOW_FLAGS_USAGE,
  flowFlags,
  hostPortFlag,
  optionalHostPortFlag,
  parseFlags,
  stringFlag,
  untilSignal,
  UsageError,
} from './flags.js';

export const AGENT_USAGE = `weft agent run --node NODE --config file:DIR --ca-root FILE --token-file FILE
               [--ca-address HOST:PORT] [--ca-server-name NAME] [--trust-domain TD] [--cert-ttl 24h]
               [--admin 127.0.0.1:15000] [--hbone 0.0.0.0:15008] [--socks5 127.0.0.1:15080]
               [--metrics 0.0.0.0:15020] [--readiness 0.0.0.0:15021]   (any listener: off)
               [--capture [--bpffs /sys/fs/bpf] [--bpf-pin-dir /sys/fs/bpf/weft/v1]]   (root; eBPF)
               [--drain-deadline 25s] [--cert-cache DIR]   (DIR: on a memory filesystem, root-only)
               [--max-connections 100000] [--max-connections-per-workload 20000]   (per direction; the
               agent bound also follows the open-file limit; beyond a bound new connections are reset)
               ${FLOW_FLAGS_USAGE}

Upgrade or restart without failed connections (with --capture): start the new agent beside the running
one. Once it serves, it takes over steering; the old one sees that, stops accepting, asks its HBONE peers
to move on (GOAWAY), closes its connections as they go idle, and resets what is left at --drain-deadline.
SIGTERM starts the same drain (then exits); without a successor, new connections fail closed meanwhile.`;

async function run(argv: string[]): Promise<void> {
  const f = parseFlags(argv, {
    node: { type: 'string' },
    config: { type: 'string' },
    ...CA_CLIENT_FLAGS,
    'trust-domain': { type: 'string' },
    'cert-ttl': { type: 'string' },
    admin: { type: 'string' },
    hbone: { type: 'string' },
    socks5: { type: 'string' },
    metrics: { type: 'string' },
    readiness: { type: 'string' },
    capture: { type: 'boolean' },
    bpffs: { type: 'string' },
    'bpf-pin-dir': { type: 'string' },
    'drain-deadline': { type: 'string' },
    'cert-cache': { type: 'string' },
    'max-connections': { type: 'string' },
    'max-connections-per-workload': { type: 'string' },
    ...FLOW_FLAGS,
  });
  const agent = await startAgent({
    nodeName: stringFlag(f, 'node'),
    trustDomain: stringFlag(f, 'trust-domain', DEFAULT_TRUST_DOMAIN),
    configSource: stringFlag(f, 'config'),
    ca: caClientFlags(f, `127.0.0.1:${DEFAULT_CA_PORT}`),
    certTtlSeconds: durationSecondsFlag(f, 'cert-ttl', DEFAULT_WORKLOAD_TTL_S),
    adminListen: hostPortFlag(f, 'admin', `127.0.0.1:${DEFAULT_ADMIN_PORT}`),
    ...flowFlags(f),
    hboneListen: optionalHostPortFlag(f, 'hbone', `0.0.0.0:${HBONE_PORT}`),
    socksListen: optionalHostPortFlag(f, 'socks5', `127.0.0.1:${SOCKS5_PORT}`),
    metricsListen: optionalHostPortFlag(f, 'metrics', `0.0.0.0:${DEFAULT_METRICS_PORT}`),
    readinessListen: optionalHostPortFlag(f, 'readiness', `0.0.0.0:${DEFAULT_READINESS_PORT}`),
    capture:
      f.capture === true
        ? {
            bpffs: stringFlag(f, 'bpffs', '/sys/fs/bpf'),
            pinDir: stringFlag(f, 'bpf-pin-dir', DEFAULT_PIN_DIR),
          }
        : null,
    ...(typeof f['cert-cache'] === 'string' && f['cert-cache'] !== '' && { certCacheDir: f['cert-cache'] }),
    connectionLimits: {
      perAgent: countFlag(f, 'max-connections', DEFAULT_CONNECTION_LIMITS.perAgent, 1),
      perWorkload: countFlag(f, 'max-connections-per-workload', DEFAULT_CONNECTION_LIMITS.perWorkload, 1),
    },
    drain: { deadlineMs: durationMsFlag(f, 'drain-deadline', DEFAULT_DRAIN_TIMINGS.deadlineMs) },
  });
  const sig = await untilSignal();
  componentLogger('agent').info({ signal: sig }, 'agent stopping');
  await agent.drain(`signal ${sig}`);
  await closeWithin(() => agent.close(), CLOSE_DEADLINE_MS);
  // Exit now: a torn-down HTTP/2 session can keep Node's handle cleanup spinning at a natural exit.
  process.exit(0);
}

export async function agentCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return run(rest);
  throw new UsageError(AGENT_USAGE);
}
