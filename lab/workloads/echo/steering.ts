// The x-echo-* request headers that shape the echo's answer, checked once at the edge so the answering
// code works on typed values and a bad header is refused by name (a 400 that says which and why).

/** Long enough for any timeout test, short enough that a typo cannot park a connection for hours. */
export const MAX_DELAY_MS = 600_000;
/** Request ids remembered for fail-first/reset-first; the oldest are forgotten beyond this. */
export const MAX_TRACKED_REQUEST_IDS = 10_000;

/** A header or trailer the answer should carry. */
export type Field = readonly [name: string, value: string];

export interface Steering {
  readonly status: number;
  readonly delayMs: number;
  readonly headers: readonly Field[];
  readonly trailers: readonly Field[];
  readonly failFirst: number;
  readonly resetFirst: number;
  readonly requestId: string | undefined;
  /** gRPC answers only: the grpc-status trailer, and the optional grpc-message trailer. */
  readonly grpcStatus: number;
  readonly grpcMessage: string | undefined;
}

export class BadRequest extends Error {}

/** Each header's values as received, repeats kept apart (not comma-joined), by lower-case name. */
export type HeaderValues = ReadonlyMap<string, readonly string[]>;

export function headerValues(rawHeaders: readonly string[]): HeaderValues {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const list = out.get(name);
    if (list === undefined) out.set(name, [rawHeaders[i + 1]!]);
    else list.push(rawHeaders[i + 1]!);
  }
  return out;
}

function intHeader(h: HeaderValues, name: string, min: number, max: number, fallback: number): number {
  const v = h.get(name)?.[0];
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v.trim()) || Number(v) < min || Number(v) > max)
    throw new BadRequest(`${name} must be an integer ${min}-${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Connection-specific fields: HTTP/2 forbids them (RFC 9113 8.2.2), so Node would refuse to send them. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
]);
/** Framing and routing fields a trailer must not carry (RFC 9110 6.5.1); Node refuses some of them. */
const NOT_IN_TRAILERS = new Set([
  ...CONNECTION_SPECIFIC,
  'content-length',
  'trailer',
  'host',
  'content-type',
]);

function fields(h: HeaderValues, header: string, refused: ReadonlySet<string>): Field[] {
  return (h.get(header) ?? []).map((entry): Field => {
    const eq = entry.indexOf('=');
    const name = eq === -1 ? '' : entry.slice(0, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) throw new BadRequest(`${header} must be name=value, got ${JSON.stringify(entry)}`);
    if (refused.has(name)) throw new BadRequest(`${header} cannot set ${name} here`);
    return [name, entry.slice(eq + 1).trim()];
  });
}

/** `h2` decides whether connection-specific response headers are refused (HTTP/1.1 may send them). */
export function readSteering(h: HeaderValues, h2: boolean): Steering {
  const steering: Steering = {
    status: intHeader(h, 'x-echo-status', 200, 599, 200),
    delayMs: intHeader(h, 'x-echo-delay-ms', 0, MAX_DELAY_MS, 0),
    headers: fields(h, 'x-echo-header', h2 ? CONNECTION_SPECIFIC : new Set()),
    trailers: fields(h, 'x-echo-trailer', NOT_IN_TRAILERS),
    failFirst: intHeader(h, 'x-echo-fail-first', 0, 1_000_000, 0),
    resetFirst: intHeader(h, 'x-echo-reset-first', 0, 1_000_000, 0),
    requestId: h.get('x-request-id')?.[0],
    grpcStatus: intHeader(h, 'x-echo-grpc-status', 0, 16, 0),
    grpcMessage: h.get('x-echo-grpc-message')?.[0],
  };
  if ((steering.failFirst > 0 || steering.resetFirst > 0) && steering.requestId === undefined)
    throw new BadRequest(
      'x-echo-fail-first and x-echo-reset-first count attempts per x-request-id, which is missing',
    );
  return steering;
}

/** Attempts per request id, oldest forgotten first once MAX_TRACKED_REQUEST_IDS are held. */
export class AttemptCounter {
  readonly #counts = new Map<string, number>();

  next(id: string): number {
    const n = (this.#counts.get(id) ?? 0) + 1;
    this.#counts.delete(id);
    this.#counts.set(id, n);
    if (this.#counts.size > MAX_TRACKED_REQUEST_IDS) this.#counts.delete(this.#counts.keys().next().value!);
    return n;
  }
}
