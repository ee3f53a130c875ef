// `weft bench agree`: the load generator's figures next to wrk's, h2load's and iperf3's on the same path.
import {
  AGREEMENT_DEFAULTS,
  formatAgreement,
  missingTools,
  missingToolsMessage,
  runAgreement,
} from '../bench/agreement.js';
import { intFlag } from './bench-load.js';
import { durationSecondsFlag, hostPortFlag, parseFlags, UsageError } from './flags.js';

export const AGREE_USAGE = `weft bench agree --http HOST:PORT --h2c HOST:PORT --discard HOST:PORT --iperf3 HOST:PORT
               [--duration 5s] [--warmup 1s] [--connections 16] [--streams 10] [--rate 1000]
               [--rate-connections 4] [--bulk-streams 1] [--realtime] [--json]
               the generator against wrk (HTTP/1.1), h2load (h2c) and iperf3 (bulk TCP; iperf3 to its own
               server), each pair back to back with the same parameters; servers: weft bench serve and
               iperf3 -s. --realtime: the fixed-rate pair (ours and h2load) under chrt -f (root)`;

export async function benchAgree(argv: string[]): Promise<number> {
  const f = parseFlags(argv, {
    http: { type: 'string' },
    h2c: { type: 'string' },
    discard: { type: 'string' },
    iperf3: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    streams: { type: 'string' },
    rate: { type: 'string' },
    'rate-connections': { type: 'string' },
    'bulk-streams': { type: 'string' },
    realtime: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  for (const name of ['http', 'h2c', 'discard', 'iperf3'])
    if (typeof f[name] !== 'string') throw new UsageError(`--${name} is required\n\n${AGREE_USAGE}`);
  const durationS = durationSecondsFlag(f, 'duration', AGREEMENT_DEFAULTS.durationS);
  if (durationS < 1) throw new UsageError('--duration: at least 1s');
  const rate = intFlag(f, 'rate', AGREEMENT_DEFAULTS.rate, 1_000_000);
  const rateConnections = intFlag(f, 'rate-connections', AGREEMENT_DEFAULTS.rateConnections, 1000);
  if (rate % rateConnections !== 0)
    throw new UsageError(`--rate ${rate} must be a multiple of --rate-connections ${rateConnections}`);
  const realtime = f.realtime === true;
  if (realtime && process.getuid?.() !== 0) throw new UsageError('--realtime needs root (chrt -f)');
  const missing = missingTools();
  if (missing.length > 0) throw new Error(missingToolsMessage(missing));
  const result = await runAgreement({
    http1: hostPortFlag(f, 'http', ''),
    h2c: hostPortFlag(f, 'h2c', ''),
    discard: hostPortFlag(f, 'discard', ''),
    iperf3: hostPortFlag(f, 'iperf3', ''),
    durationS,
    warmupS: durationSecondsFlag(f, 'warmup', AGREEMENT_DEFAULTS.warmupS),
    connections: intFlag(f, 'connections', AGREEMENT_DEFAULTS.connections, 10_000),
    streams: intFlag(f, 'streams', AGREEMENT_DEFAULTS.streams, 1000),
    rate,
    rateConnections,
    bulkStreams: intFlag(f, 'bulk-streams', AGREEMENT_DEFAULTS.bulkStreams, 128),
    realtime,
    out: (line) => void process.stderr.write(`${line}\n`),
  });
  process.stdout.write(f.json === true ? `${JSON.stringify(result)}\n` : `${formatAgreement(result)}\n`);
  // Disagreement is a finding, not a failure; failed requests are (as for weft bench load).
  return result.runs.some((r) => r.errors > 0) ? 2 : 0;
}
