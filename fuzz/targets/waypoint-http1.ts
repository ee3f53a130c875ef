// Target `waypoint-http1`: the waypoint's HTTP/1.1 path, end to end in-process (waypoint-server.ts). Raw
// request bytes (generated smuggling-shaped requests, http1-requests.ts, and byte mutations of the
// corpus) go into a CONNECT tunnel to the Service's HTTP port (80), its undeclared port (81, sniffed),
// its HTTP/2 port (82: HTTP/1 in front, HTTP/2 to the backend) or its port on a lenient backend (84).
// A well-formed sentinel request follows the input on the same connection: its answer shows the
// waypoint is done with everything before it. Then the client half-closes.
//
// The property: the waypoint answers with well-formed HTTP/1 status lines or closes, and finishes the
// tunnel within HANG_MS of the half-close; what it forwards parses at the backend, is never a path the
// DENY policy covers, has a normalized request-target and none of the hop-by-hop headers that open a
// second channel past it (h2c upgrade settings, Proxy-Connection, Keep-Alive), and never both
// Content-Length and Transfer-Encoding; a well-formed control request on another HBONE session still
// succeeds after every input; and after each batch the waypoint holds no HBONE session but ours.
import http from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import fc from 'fast-check';
import { PING_INTERVAL_MS, PING_TIMEOUT_MS } from '../../core/hbone/settings.js';
import { normalizeRequestTarget } from '../../proxy/http/normalize.js';
import { classifyPrefix } from '../../proxy/tunnel/protocol.js';
import type { FuzzSession, FuzzTarget } from '../fuzz-target.js';
import { openSession, tunnelExchange } from '../loopback.js';
import { mutatedBytes } from '../mutate.js';
import { HTTP1_TOKENS, http1Requests } from './http1-requests.js';
import {
  startWaypointHarness,
  DENIED_PREFIX,
  PORTS,
  SERVICE_VIP,
  WAYPOINT_ID,
  type ForwardedRequest,
  type WaypointHarness,
} from './waypoint-server.js';

export interface WaypointHttp1Input {
  readonly port: number;
  readonly bytes: Uint8Array;
}

/** After the client half-closed, the waypoint has this long to finish the tunnel. */
const HANG_MS = 5_000;
const SETTLE_MS = 5_000;
/** How long a session the waypoint gave up on may outlive its client (the keepalive's bound). */
const GIVEN_UP_BOUND_MS = PING_INTERVAL_MS + PING_TIMEOUT_MS + 3_000;
const SERVICE_PORTS = [PORTS.http, PORTS.undeclared, PORTS.h2, PORTS.lenient];
/** Headers that must not reach a backend (proxy/http/framing.ts): each could carry a second protocol. */
const NEVER_FORWARDED = new Set(['http2-settings', 'proxy-connection', 'keep-alive']);
const STATUS_LINE = /^HTTP\/1\.[01] [1-5][0-9][0-9] /;
/** A request sent after every input: its answer shows the waypoint has dealt with all before it. */
const SENTINEL = Buffer.from('GET /sentinel HTTP/1.1\r\nHost: echo\r\n\r\n', 'latin1');
const SENTINEL_ANSWER = Buffer.from('ok GET /sentinel', 'latin1');
/** Without the sentinel's answer (the input left the parser waiting), the client gives up after this. */
const QUIET_MS = 150;
const sentinelAnswered = (received: Buffer): boolean => received.includes(SENTINEL_ANSWER);

/** Whether the waypoint parses the input as HTTP (on the undeclared port, only what sniffs as HTTP). */
function parsedAsHttp(input: WaypointHttp1Input): boolean {
  if (input.port !== PORTS.undeclared) return true;
  const seen = classifyPrefix(Buffer.from(input.bytes));
  return seen === 'http1' || seen === 'h2';
}

export function checkForwarded(request: ForwardedRequest): void {
  const normalized = normalizeRequestTarget(request.target);
  if (normalized.ok && (normalized.path === DENIED_PREFIX || normalized.path.startsWith(`${DENIED_PREFIX}/`)))
    throw new Error(
      `a request for ${request.target} reached the backend past the DENY policy on ${DENIED_PREFIX}/*`,
    );
  if (!normalized.ok || normalized.changed)
    throw new Error(`forwarded request-target ${JSON.stringify(request.target)} is not in normal form`);
  const names = new Set<string>();
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i]!.toLowerCase();
    const value = request.rawHeaders[i + 1]!;
    if (NEVER_FORWARDED.has(name)) throw new Error(`forwarded hop-by-hop header ${name}: ${value}`);
    if (name === 'upgrade' && value.toLowerCase().includes('h2c')) throw new Error('forwarded Upgrade: h2c');
    names.add(name);
  }
  if (names.has('content-length') && names.has('transfer-encoding'))
    throw new Error('forwarded both Content-Length and Transfer-Encoding');
}

/** The body of a GET to the admin endpoint. */
function getJson(port: number, path: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as unknown));
      })
      .on('error', reject);
  });
}

/** Shared by the HTTP/1 and HTTP/2 waypoint targets: the harness, the sessions, the control request. */
export class WaypointClient {
  readonly harness: WaypointHarness;
  #control: ClientHttp2Session;
  #fuzz: ClientHttp2Session | undefined;
  /** When the waypoint ended a fuzz session with an error. */
  readonly #givenUp: number[] = [];

  constructor(harness: WaypointHarness, control: ClientHttp2Session) {
    this.harness = harness;
    this.#control = control;
  }

  static async start(): Promise<WaypointClient> {
    const harness = await startWaypointHarness();
    return new WaypointClient(harness, await openSession(harness.hbonePort, harness.clientCert, WAYPOINT_ID));
  }

  /** The session fuzz tunnels use; a new one if the waypoint ended the last. */
  async fuzzSession(): Promise<ClientHttp2Session> {
    if (this.#fuzz === undefined || this.#fuzz.closed || this.#fuzz.destroyed) {
      const session = await openSession(this.harness.hbonePort, this.harness.clientCert, WAYPOINT_ID);
      // The waypoint may end it with an error (too many tunnels reset: nghttp2's rapid-reset limit).
      // Such a session stops reading, so the waypoint keeps it until the keepalive ends it.
      session.on('goaway', (code: number) => {
        if (code !== 0) this.#givenUp.push(Date.now());
      });
      this.#fuzz = session;
    }
    return this.#fuzz;
  }

  async controlRequest(session = this.#control, which = 'the long-lived control session'): Promise<void> {
    const result = await tunnelExchange(session, `${SERVICE_VIP}:${PORTS.http}`, SENTINEL, {
      answered: sentinelAnswered,
      quietMs: HANG_MS,
      maxMs: HANG_MS,
    });
    const text = result.received.toString('latin1');
    if (result.status !== 200 || !text.startsWith('HTTP/1.1 200') || !result.answered)
      throw new Error(
        `a well-formed request on ${which} failed: CONNECT ${result.status}, got ${JSON.stringify(text.slice(0, 300))}`,
      );
    this.harness.backends.take();
  }

  async healthy(): Promise<void> {
    const fresh = await openSession(this.harness.hbonePort, this.harness.clientCert, WAYPOINT_ID);
    try {
      await this.controlRequest(fresh, 'a fresh session');
    } finally {
      fresh.destroy();
    }
    // Ours: the control session and the fuzz session, and fuzz sessions it gave up on within the
    // keepalive bound. Closing is asynchronous, so poll the admin view.
    const givenUp = this.#givenUp.filter((at) => at > Date.now() - GIVEN_UP_BOUND_MS).length;
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      const dump = (await getJson(this.harness.adminPort, '/config_dump')) as {
        tunnels: { inboundSessions: number };
      };
      if (dump.tunnels.inboundSessions <= 2 + givenUp) return;
      if (Date.now() > deadline)
        throw new Error(`the waypoint still holds ${dump.tunnels.inboundSessions} HBONE sessions`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async close(): Promise<void> {
    this.#control.destroy();
    this.#fuzz?.destroy();
    await this.harness.close();
  }
}

class WaypointHttp1Session implements FuzzSession<WaypointHttp1Input> {
  constructor(readonly client: WaypointClient) {}

  arbitrary(seeds: readonly WaypointHttp1Input[]): fc.Arbitrary<WaypointHttp1Input> {
    const port = fc.oneof(
      { weight: 4, arbitrary: fc.constant(PORTS.http) },
      fc.constantFrom(PORTS.undeclared, PORTS.h2, PORTS.lenient),
    );
    const generated = fc.record({ port, bytes: http1Requests.map((b) => new Uint8Array(b)) });
    if (seeds.length === 0) return generated;
    const mutated = fc.record({
      port,
      bytes: mutatedBytes(
        seeds.map((s) => Buffer.from(s.bytes)),
        { dictionary: HTTP1_TOKENS, maxMutations: 2 },
      ).map((b) => new Uint8Array(b)),
    });
    return fc.oneof({ weight: 3, arbitrary: generated }, { weight: 2, arbitrary: mutated });
  }

  async check(input: WaypointHttp1Input): Promise<void> {
    const { backends } = this.client.harness;
    backends.take();
    const session = await this.client.fuzzSession();
    const bytes = Buffer.concat([input.bytes, SENTINEL]);
    const result = await tunnelExchange(session, `${SERVICE_VIP}:${input.port}`, bytes, {
      answered: sentinelAnswered,
      quietMs: QUIET_MS,
      maxMs: HANG_MS,
    });
    if (result.status !== 200)
      throw new Error(`the waypoint refused the tunnel to its own Service: ${result.status}`);
    const text = result.received.toString('latin1');
    if (!result.finished)
      throw new Error(
        `the tunnel was still open ${HANG_MS} ms after the client half-closed (got ${JSON.stringify(text.slice(0, 200))})`,
      );
    if (parsedAsHttp(input)) {
      const startsH2 = classifyPrefix(Buffer.from(input.bytes)) === 'h2';
      if (text.length > 0 && !startsH2 && !STATUS_LINE.test(text))
        throw new Error(
          `answered with something other than an HTTP/1 status line: ${JSON.stringify(text.slice(0, 200))}`,
        );
      const { requests, malformed } = backends.take();
      if (malformed.length > 0)
        throw new Error(`the backend could not parse what the waypoint sent: ${malformed.join('; ')}`);
      requests.forEach(checkForwarded);
    }
    await this.client.controlRequest();
  }

  healthy(): Promise<void> {
    return this.client.healthy();
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

const NAME_RE = /\.port(\d+)\.req$/;

export const waypointHttp1Target: FuzzTarget<WaypointHttp1Input> = {
  name: 'waypoint-http1',
  async start() {
    return new WaypointHttp1Session(await WaypointClient.start());
  },
  decode(file, bytes) {
    const port = Number(NAME_RE.exec(file)?.[1]);
    if (!SERVICE_PORTS.includes(port as (typeof SERVICE_PORTS)[number]))
      throw new Error(`${file}: name it <name>.port<${SERVICE_PORTS.join('|')}>.req`);
    return { port, bytes: new Uint8Array(bytes) };
  },
  encode(input) {
    return { extension: `.port${input.port}.req`, bytes: Buffer.from(input.bytes) };
  },
};
