// How a load run reads for people: a progress line while it runs, a short table after.
import type { BulkResult } from './bulk.js';
import type { LoadProgress, LoadResult } from './run.js';

const BAR_WIDTH = 24;

/** One line, rewritten in place (\r) on a terminal. */
export function progressLine(p: LoadProgress): string {
  const done = Math.min(1, p.elapsedMs / p.totalMs);
  const filled = Math.round(done * BAR_WIDTH);
  const bar = `${'='.repeat(filled)}${filled < BAR_WIDTH ? '>' : ''}`.padEnd(BAR_WIDTH + 1);
  const phase = p.warmingUp ? 'warm-up' : `${p.rps} rps`;
  return `[${bar}] ${(p.elapsedMs / 1000).toFixed(0)}/${(p.totalMs / 1000).toFixed(0)} s  ${phase}  ${p.completed} done  ${p.errors} errors`;
}

function ms(us: number): string {
  return (us / 1000).toFixed(us < 10_000 ? 3 : 1);
}

export function formatLoadResult(r: LoadResult): string {
  const mode =
    r.mode === 'fixed-rate'
      ? `fixed rate ${r.targetRps} rps (latency from the scheduled start)`
      : 'closed loop, maximum rate (latency from the send)';
  const setup = r.connectionPerRequest ? 'a new connection per request' : `${r.connections} connections`;
  const depth = r.depth > 1 ? ` × ${r.depth} streams` : '';
  const errors = Object.entries(r.errors)
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  const row = (name: string, l: LoadResult['latencyUs']): string =>
    `  ${name.padEnd(22)} ${[l.p50, l.p90, l.p99, l.p999, l.max, l.mean].map((v) => ms(v).padStart(9)).join('')}`;
  return [
    `${r.protocol}, ${setup}${depth}, ${mode}, ${r.seconds} s`,
    `  requests ${r.requests}, achieved ${r.achievedRps} rps, errors ${r.errorCount}${errors ? ` (${errors})` : ''}${(r.retried ?? 0) > 0 ? `, retried ${r.retried}` : ''}`,
    `  ${'latency ms'.padEnd(22)} ${['p50', 'p90', 'p99', 'p99.9', 'max', 'mean'].map((h) => h.padStart(9)).join('')}`,
    row(r.mode === 'fixed-rate' ? 'from schedule' : 'from send', r.latencyUs),
    ...(r.mode === 'fixed-rate'
      ? [row('service (from send)', r.serviceUs), row('generator lateness', r.sendLagUs)]
      : []),
  ].join('\n');
}

export function formatBulkResult(r: BulkResult): string {
  return `bulk TCP, ${r.streams} stream${r.streams === 1 ? '' : 's'}, ${r.seconds} s: ${r.gbitPerSecond} Gbit/s (${r.bytes} bytes counted by the server)`;
}
