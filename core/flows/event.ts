// A flow event: what the node agent and the waypoint publish about each connection and request they
// carry (Hubble's Flow, for an ambient mesh). It is the wire format of the admin port's `/flows` stream,
// of `weft observe -o json`, and the input of the service map and of policy suggestion, so its fields are
// named once here and read everywhere else through these types.
//
// Made once per connection event or request, never per chunk; serialized lazily, once, for however many
// observers read it (`flowEventJson`).

/** Who reported the event. `name` is the node for an agent, `namespace/pod` for a waypoint replica. */
export interface FlowReporter {
  readonly kind: 'agent' | 'waypoint';
  readonly name: string;
}

/**
 * One end of a flow. Everything but the address is optional: an address outside the mesh has no pod, a
 * plaintext peer no identity.
 */
export interface FlowPeer {
  readonly ip: string;
  readonly port: number;
  readonly namespace?: string;
  /** The pod's name. */
  readonly pod?: string;
  /** Istio's workload name (a Deployment's pods share it; see core/telemetry/workload-names.ts). */
  readonly workload?: string;
  /** The SPIFFE ID the peer proved (source) or had to prove (destination); absent for plaintext. */
  readonly identity?: string;
}

/** The Service the client addressed, when it addressed one. */
export interface FlowService {
  readonly namespace: string;
  readonly name: string;
  /** `name.namespace.svc.<cluster domain>`. */
  readonly host: string;
}

export interface FlowHttp {
  readonly method: string;
  /** The normalized path, without the query. */
  readonly path: string;
  readonly host?: string;
  /** The status sent to the client; 0 when none was sent. */
  readonly status: number;
  /** The gRPC status, for gRPC requests that ended with one. */
  readonly grpcStatus?: number;
  /** The HTTPRoute rule that matched, `namespace/route.rule`. */
  readonly route?: string;
}

/** `open`/`close`: an L4 connection (close carries bytes and duration); `request`: one L7 request. */
export type FlowType = 'open' | 'close' | 'request';

/**
 * ALLOWED: policy let it through (or none applied); DENIED: an AuthorizationPolicy or PeerAuthentication
 * refused it (`policy`, `rule` say which); ERROR: the mesh could not carry it (no endpoint, connect
 * failure, refused destination: `reason` says why).
 */
export type FlowVerdict = 'ALLOWED' | 'DENIED' | 'ERROR';

/**
 * The way the traffic went: `direct` (not tunnelled: a destination outside the mesh, or plaintext from
 * outside it), `tunnel` (HBONE between agents), `waypoint` (HBONE through a waypoint), `none` (refused
 * before any way was chosen: no endpoint, a missing waypoint).
 */
export type FlowPath = 'direct' | 'tunnel' | 'waypoint' | 'none';

export interface FlowEvent {
  /** Increases by one per event of its reporter (a gap seen by a reader is events it lost). */
  readonly seq: number;
  /** Epoch milliseconds. */
  readonly time: number;
  readonly reporter: FlowReporter;
  readonly type: FlowType;
  /** The agent's side of the connection: `outbound` at the source's node, `inbound` at the destination's. */
  readonly direction?: 'inbound' | 'outbound';
  readonly path: FlowPath;
  readonly protocol: 'tcp' | 'http' | 'grpc';
  readonly source: FlowPeer;
  readonly destination: FlowPeer;
  readonly service?: FlowService;
  readonly verdict: FlowVerdict;
  /** The deciding policy, `namespace/name` (a denial by PeerAuthentication names istiod's DENY policy). */
  readonly policy?: string;
  /** The deciding rule's index in the policy's `spec.rules`. */
  readonly rule?: number;
  /** Why, in words: the policy's message, the refusal, the error. */
  readonly reason?: string;
  /** Envoy's response flags (`-` when none). */
  readonly flags: string;
  /** Bytes from the client towards the server (close, request). */
  readonly requestBytes?: number;
  /** Bytes from the server back (close, request). */
  readonly responseBytes?: number;
  /** The connection's life (close) or the request's latency, first byte in to last byte out (request). */
  readonly durationMs?: number;
  readonly http?: FlowHttp;
}

const serialized = new WeakMap<FlowEvent, string>();

/** The event as one JSON line (with its newline); computed once, whoever asks. */
export function flowEventJson(event: FlowEvent): string {
  let line = serialized.get(event);
  if (line === undefined) {
    line = JSON.stringify(event) + '\n';
    serialized.set(event, line);
  }
  return line;
}

/**
 * A stream line that is not an event: how many events a reader lost because it read slower than its
 * reporter produced them (the ring overwrote them first).
 */
export interface FlowsLost {
  readonly type: 'lost';
  readonly reporter: FlowReporter;
  readonly count: number;
}

export type FlowStreamLine = FlowEvent | FlowsLost;

const FLOW_TYPES: ReadonlySet<string> = new Set(['open', 'close', 'request']);
const VERDICTS: ReadonlySet<string> = new Set(['ALLOWED', 'DENIED', 'ERROR']);
const PATHS: ReadonlySet<string> = new Set(['direct', 'tunnel', 'waypoint', 'none']);
const PROTOCOLS: ReadonlySet<string> = new Set(['tcp', 'http', 'grpc']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isPeer(v: unknown): v is FlowPeer {
  return isRecord(v) && typeof v.ip === 'string' && typeof v.port === 'number';
}

/**
 * Reads one line of a flow stream (or of a saved `weft observe -o json` file). Throws saying which field
 * is wrong; the caller adds where the line came from.
 */
export function parseFlowLine(line: string): FlowStreamLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isRecord(value)) throw new Error('not a JSON object');
  const reporter = value.reporter;
  if (!isRecord(reporter) || (reporter.kind !== 'agent' && reporter.kind !== 'waypoint'))
    throw new Error('reporter: want {kind: agent|waypoint, name}');
  if (typeof reporter.name !== 'string') throw new Error('reporter.name: want a string');
  if (value.type === 'lost') {
    if (typeof value.count !== 'number') throw new Error('count: want a number');
    return value as unknown as FlowsLost;
  }
  if (typeof value.type !== 'string' || !FLOW_TYPES.has(value.type))
    throw new Error(`type: want open, close, request or lost, not ${JSON.stringify(value.type)}`);
  if (typeof value.seq !== 'number' || typeof value.time !== 'number')
    throw new Error('seq, time: want numbers');
  if (typeof value.verdict !== 'string' || !VERDICTS.has(value.verdict))
    throw new Error(`verdict: want ALLOWED, DENIED or ERROR, not ${JSON.stringify(value.verdict)}`);
  if (typeof value.path !== 'string' || !PATHS.has(value.path))
    throw new Error(`path: want direct, tunnel, waypoint or none, not ${JSON.stringify(value.path)}`);
  if (typeof value.protocol !== 'string' || !PROTOCOLS.has(value.protocol))
    throw new Error(`protocol: want tcp, http or grpc, not ${JSON.stringify(value.protocol)}`);
  if (!isPeer(value.source)) throw new Error('source: want {ip, port, …}');
  if (!isPeer(value.destination)) throw new Error('destination: want {ip, port, …}');
  if (typeof value.flags !== 'string') throw new Error('flags: want a string');
  if (value.http !== undefined) {
    const h = value.http;
    if (
      !isRecord(h) ||
      typeof h.method !== 'string' ||
      typeof h.path !== 'string' ||
      typeof h.status !== 'number'
    )
      throw new Error('http: want {method, path, status, …}');
  }
  return value as unknown as FlowEvent;
}

/** An event, not a `lost` marker. */
export function isFlowEvent(line: FlowStreamLine): line is FlowEvent {
  return line.type !== 'lost';
}
