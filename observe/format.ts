// `weft observe`'s text output: one aligned row per flow event (Hubble's compact form, with the mesh's
// facts: which way it went, the verdict and what decided it). A list is aligned to its widest cells; a
// live stream, which cannot know them, to fixed widths that long cells simply overrun.
import type { FlowEvent, FlowPeer, FlowsLost } from '../core/flows/event.js';

export const FLOW_COLUMNS = [
  'TIME',
  'REPORTER',
  'SOURCE',
  'DESTINATION',
  'PATH',
  'TYPE',
  'VERDICT',
  'DETAILS',
];
/** Widths for a live stream: what typical lab and cluster names need. */
const STREAM_WIDTHS = [12, 22, 28, 34, 8, 7, 7];

function peerName(p: FlowPeer, withPort: boolean): string {
  const who = p.pod !== undefined && p.namespace !== undefined ? `${p.namespace}/${p.pod}` : p.ip;
  return withPort ? `${who}:${p.port}` : who;
}

function bytes(n: number): string {
  return n < 1024
    ? `${n}B`
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(1)}KiB`
      : `${(n / 1048576).toFixed(1)}MiB`;
}

/** What decided and what happened, in a few words. */
export function flowDetails(e: FlowEvent): string {
  const parts: string[] = [];
  if (e.http) {
    parts.push(`${e.http.method} ${e.http.path} → ${e.http.status === 0 ? 'no response' : e.http.status}`);
  }
  if (e.service) parts.push(`svc ${e.service.namespace}/${e.service.name}`);
  if (e.verdict === 'DENIED') {
    const by = e.policy === undefined ? 'no ALLOW policy matched' : `by ${e.policy}`;
    parts.push(e.rule === undefined ? by : `${by} rule ${e.rule}`);
  } else if (e.verdict === 'ERROR') {
    parts.push(`${e.flags !== '-' ? `${e.flags}: ` : ''}${e.reason ?? 'failed'}`);
  } else if (e.policy !== undefined) {
    parts.push(`allowed by ${e.policy}${e.rule === undefined ? '' : ` rule ${e.rule}`}`);
  }
  if (e.http?.route !== undefined) parts.push(`route ${e.http.route}`);
  if (e.type === 'close' && e.requestBytes !== undefined)
    parts.push(`↑${bytes(e.requestBytes)} ↓${bytes(e.responseBytes ?? 0)}`);
  if (e.durationMs !== undefined && e.type !== 'open') parts.push(`${Math.round(e.durationMs)}ms`);
  if (e.source.identity !== undefined) parts.push(`from ${e.source.identity.replace(/^spiffe:\/\//, '')}`);
  return parts.join(' · ');
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

export function flowRow(e: FlowEvent): string[] {
  return [
    clock(e.time),
    `${e.reporter.kind === 'agent' ? 'agent' : 'wp'} ${e.reporter.name}${e.direction === undefined ? '' : ` ${e.direction === 'inbound' ? 'in' : 'out'}`}`,
    peerName(e.source, false),
    peerName(e.destination, true),
    e.path,
    e.type,
    e.verdict,
    flowDetails(e),
  ];
}

export function lostRow(l: FlowsLost): string {
  return `-- ${l.count} event(s) of ${l.reporter.kind} ${l.reporter.name} lost: this reader was slower than the flows`;
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => (i < widths.length ? c.padEnd(widths[i]!) : c))
    .join('  ')
    .trimEnd();
}

/** A live stream's row (fixed widths). */
export function streamLine(e: FlowEvent): string {
  return pad(flowRow(e), STREAM_WIDTHS);
}

export function streamHeader(): string {
  return pad(FLOW_COLUMNS, STREAM_WIDTHS);
}

/** A whole list, aligned to its widest cells (the last column is not padded). */
export function flowTable(events: readonly FlowEvent[]): string[] {
  const rows = [FLOW_COLUMNS, ...events.map(flowRow)];
  const widths = FLOW_COLUMNS.slice(0, -1).map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => pad(r, widths));
}
