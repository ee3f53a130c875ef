// Which flow events a reader wants: `weft observe`'s flags, sent to each agent and waypoint as the query
// of `/flows` so that filtering happens where the events are (nothing unwanted crosses the wire), and
// applied again by the client to saved files. One compiled predicate serves both.
//
// Semantics, as Hubble's: values of one field are alternatives (any may match); fields are all required.
// `namespace`, `pod` and `identity` match either end of the flow; `port` the destination's port.
import type { FlowEvent, FlowType, FlowVerdict } from './event.js';

export interface FlowFilter {
  readonly namespace?: readonly string[];
  /** `namespace/name`, or a bare pod name (any namespace). */
  readonly pod?: readonly string[];
  /** A SPIFFE ID, with or without `spiffe://`. */
  readonly identity?: readonly string[];
  readonly verdict?: readonly FlowVerdict[];
  readonly protocol?: readonly ('tcp' | 'http' | 'grpc')[];
  readonly port?: readonly number[];
  readonly type?: readonly FlowType[];
}

export const FLOW_FILTER_FIELDS = [
  'namespace',
  'pod',
  'identity',
  'verdict',
  'protocol',
  'port',
  'type',
] as const satisfies readonly (keyof FlowFilter)[];

const VERDICTS: readonly FlowVerdict[] = ['ALLOWED', 'DENIED', 'ERROR'];
const PROTOCOLS = ['tcp', 'http', 'grpc'] as const;
const TYPES: readonly FlowType[] = ['open', 'close', 'request'];
/** A query or a command line asking for more alternatives than this is refused, not slowly served. */
const MAX_VALUES = 64;
const MAX_VALUE_LENGTH = 512;

function oneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  const v = (field === 'verdict' ? value.toUpperCase() : value.toLowerCase()) as T;
  if (!allowed.includes(v))
    throw new Error(`${field}: ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  return v;
}

/**
 * The filter from `field → values` (a query's parameters, a command line's flags). Values may also be
 * comma-separated. Throws naming the field for anything it cannot read.
 */
export function parseFlowFilter(entries: Iterable<readonly [string, string]>): FlowFilter {
  const fields = new Map<string, string[]>();
  for (const [key, raw] of entries) {
    if (!(FLOW_FILTER_FIELDS as readonly string[]).includes(key)) continue;
    const list = fields.get(key) ?? [];
    for (const value of raw.split(',')) {
      const v = value.trim();
      if (v === '') continue;
      if (v.length > MAX_VALUE_LENGTH) throw new Error(`${key}: a value longer than ${MAX_VALUE_LENGTH}`);
      list.push(v);
    }
    if (list.length > MAX_VALUES) throw new Error(`${key}: more than ${MAX_VALUES} values`);
    fields.set(key, list);
  }
  const filter: { -readonly [K in keyof FlowFilter]: FlowFilter[K] } = {};
  for (const [key, values] of fields) {
    if (values.length === 0) continue;
    switch (key) {
      case 'namespace':
      case 'pod':
      case 'identity':
        filter[key] = values;
        break;
      case 'verdict':
        filter.verdict = values.map((v) => oneOf('verdict', v, VERDICTS));
        break;
      case 'protocol':
        filter.protocol = values.map((v) => oneOf('protocol', v, PROTOCOLS));
        break;
      case 'type':
        filter.type = values.map((v) => oneOf('type', v, TYPES));
        break;
      case 'port':
        filter.port = values.map((v) => {
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0 || n > 65535)
            throw new Error(`port: ${JSON.stringify(v)} is not a port number`);
          return n;
        });
        break;
    }
  }
  return filter;
}

/** The filter as a query string's parameters (the inverse of parseFlowFilter). */
export function flowFilterQuery(filter: FlowFilter): URLSearchParams {
  const q = new URLSearchParams();
  for (const field of FLOW_FILTER_FIELDS) {
    const values = filter[field];
    if (values && values.length > 0) q.set(field, values.map(String).join(','));
  }
  return q;
}

function stripScheme(id: string): string {
  return id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : id;
}

/** The filter as one predicate; an empty filter passes everything. */
export function compileFlowFilter(filter: FlowFilter): (event: FlowEvent) => boolean {
  const tests: ((e: FlowEvent) => boolean)[] = [];
  if (filter.namespace) {
    const set = new Set(filter.namespace);
    tests.push(
      (e) =>
        (e.source.namespace !== undefined && set.has(e.source.namespace)) ||
        (e.destination.namespace !== undefined && set.has(e.destination.namespace)) ||
        (e.service !== undefined && set.has(e.service.namespace)),
    );
  }
  if (filter.pod) {
    const qualified = new Set(filter.pod.filter((p) => p.includes('/')));
    const bare = new Set(filter.pod.filter((p) => !p.includes('/')));
    const podMatches = (ns: string | undefined, pod: string | undefined): boolean =>
      pod !== undefined && (bare.has(pod) || (ns !== undefined && qualified.has(`${ns}/${pod}`)));
    tests.push(
      (e) =>
        podMatches(e.source.namespace, e.source.pod) ||
        podMatches(e.destination.namespace, e.destination.pod),
    );
  }
  if (filter.identity) {
    const set = new Set(filter.identity.map(stripScheme));
    tests.push(
      (e) =>
        (e.source.identity !== undefined && set.has(stripScheme(e.source.identity))) ||
        (e.destination.identity !== undefined && set.has(stripScheme(e.destination.identity))),
    );
  }
  if (filter.verdict) {
    const set = new Set<string>(filter.verdict);
    tests.push((e) => set.has(e.verdict));
  }
  if (filter.protocol) {
    const set = new Set<string>(filter.protocol);
    tests.push((e) => set.has(e.protocol));
  }
  if (filter.port) {
    const set = new Set(filter.port);
    tests.push((e) => set.has(e.destination.port));
  }
  if (filter.type) {
    const set = new Set<string>(filter.type);
    tests.push((e) => set.has(e.type));
  }
  return (e) => {
    for (const t of tests) if (!t(e)) return false;
    return true;
  };
}
