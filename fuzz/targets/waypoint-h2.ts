// Target `waypoint-h2`: the waypoint's HTTP/2 path (the client speaks HTTP/2 inside the tunnel: prior
// knowledge, sniffed from the preface), in-process (waypoint-server.ts). Inputs are hand-built frame
// sequences (http2-frames.ts) whose header blocks hold random header sets: pseudo-headers missing,
// repeated or odd, connection-specific headers HTTP/2 forbids, Host differing from :authority, TE
// other than trailers, content-length against DATA, upper-case names, and any bytes in values. They go
// to the HTTP port (80, HTTP/1 backend), the undeclared port (81) or the HTTP/2 port (82, h2c backend).
//
// The property, as for waypoint-http1: the waypoint answers (a PING sent after the input is
// acknowledged) or gives up on the session, and finishes the tunnel once the client half-closes; what
// it forwards parses at the backend, is normalized and carries no hop-by-hop header; a control request
// still succeeds after every input; no HBONE session is left after a batch but ours.
import fc from 'fast-check';
import type { FuzzSession, FuzzTarget } from '../fuzz-target.js';
import {
  encodeFrames,
  frameSpecs,
  goawayCode,
  pingAnswered,
  CLIENT_PREFACE,
  MARK_PING,
  streamsAnswered,
  type FrameSpec,
  type HeaderList,
} from '../http2-frames.js';
import { parseWithBytes, stringifyWithBytes } from '../json-bytes.js';
import { tunnelExchange } from '../loopback.js';
import { checkForwarded, WaypointClient } from './waypoint-http1.js';
import { PORTS, SERVICE_VIP } from './waypoint-server.js';

export interface WaypointH2Input {
  readonly port: number;
  readonly frames: readonly FrameSpec[];
}

/** After the client half-closed, the waypoint has this long to finish the tunnel. */
const HANG_MS = 5_000;
/** Without the PING's answer, the client gives up after this. */
const QUIET_MS = 150;
const SERVICE_PORTS: readonly number[] = [PORTS.http, PORTS.undeclared, PORTS.h2];

/**
 * A session nghttp2 gave up on (GOAWAY with an error, or no answer to the PING after the input) stops
 * reading and never sees the client's half-close (as at the agent, agent/inbound.ts), so its tunnel
 * ends only when the client resets it; a live session must end the tunnel after the half-close.
 */
const gaveUp = (received: Buffer): boolean => (goawayCode(received) ?? 0) !== 0 || !pingAnswered(received);

const METHODS = ['GET', 'GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'CONNECT', 'get', 'TRACE', ''];
const PATHS = [
  '/',
  '/x?q=1',
  '/rewrite/a',
  '/redirect/a',
  '/admin',
  '/admin/x',
  '/x/../admin/x',
  '//admin/x',
  '/%2e%2e/admin',
  '/admin%2Fx',
  '/a\\b',
  '/%00',
  '*',
  'http://echo/x',
  '',
  'x',
  '/caf\u00e9',
  '/' + 'a'.repeat(5000),
];
const AUTHORITIES = ['echo', 'echo', 'echo:80', 'other', '', 'user@echo', 'a b', 'ECHO'];
const HEADERS: readonly (readonly [string, string])[] = [
  ['host', 'echo'],
  ['host', 'other'],
  ['content-length', '5'],
  ['content-length', '0'],
  ['content-length', '-1'],
  ['te', 'trailers'],
  ['te', 'gzip'],
  ['connection', 'close'],
  ['keep-alive', '5'],
  ['proxy-connection', 'x'],
  ['transfer-encoding', 'chunked'],
  ['upgrade', 'h2c'],
  ['http2-settings', 'AAMAAABkAARAAAAAAAIAAAAA'],
  ['x-retry', 'yes'],
  ['cookie', 'a=1'],
  ['cookie', 'b=2'],
  ['X-Upper', 'v'],
  ['x-nul', 'a\u0000b'],
  ['x-crlf', 'a\r\nb'],
  [':unknown', 'v'],
  ['expect', '100-continue'],

  ['x-long', 'v'.repeat(20_000)],
];

/** A request-shaped header list: usually all four pseudo-headers first, then some others. */
const headerList: fc.Arbitrary<HeaderList> = fc
  .record({
    method: fc.constantFrom(...METHODS),
    scheme: fc.constantFrom('http', 'http', 'https', 'ftp', ''),
    path: fc.oneof(
      fc.constantFrom(...PATHS),
      fc.webPath().map((p) => `/${p}`),
    ),
    authority: fc.constantFrom(...AUTHORITIES),
    omit: fc.oneof({ weight: 5, arbitrary: fc.constant(-1) }, fc.nat(3)),
    others: fc.array(fc.constantFrom(...HEADERS), { maxLength: 3 }),
    pseudoLast: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, fc.constant(true)),
  })
  .map(({ method, scheme, path, authority, omit, others, pseudoLast }) => {
    const pseudo = [
      [':method', method],
      [':scheme', scheme],
      [':path', path],
      [':authority', authority],
    ].filter((_, i) => i !== omit) as [string, string][];
    return pseudoLast ? [...others, ...pseudo] : [...pseudo, ...others];
  });

class WaypointH2Session implements FuzzSession<WaypointH2Input> {
  constructor(readonly client: WaypointClient) {}

  arbitrary(seeds: readonly WaypointH2Input[]): fc.Arbitrary<WaypointH2Input> {
    const port = fc.oneof(
      { weight: 3, arbitrary: fc.constant(PORTS.h2) },
      fc.constantFrom(PORTS.http, PORTS.undeclared),
    );
    const generated = fc.record({ port, frames: frameSpecs(headerList, 8) });
    if (seeds.length === 0) return generated;
    // A corpus sequence with generated frames after it: starts from requests the waypoint serves.
    const extended = fc
      .tuple(fc.constantFrom(...seeds), frameSpecs(headerList, 4))
      .map(([seed, more]): WaypointH2Input => ({ port: seed.port, frames: [...seed.frames, ...more] }));
    return fc.oneof(
      { weight: 2, arbitrary: generated },
      { weight: 1, arbitrary: fc.constantFrom(...seeds) },
      { weight: 2, arbitrary: extended },
    );
  }

  async check(input: WaypointH2Input): Promise<void> {
    const { backends } = this.client.harness;
    backends.take();
    const session = await this.client.fuzzSession();
    const settings = encodeFrames([{ t: 'settings', flags: 0, params: [] }], {});
    const bytes = Buffer.concat([CLIENT_PREFACE, settings, encodeFrames(input.frames, {}), MARK_PING]);
    const result = await tunnelExchange(session, `${SERVICE_VIP}:${input.port}`, bytes, {
      answered: streamsAnswered([
        ...new Set(input.frames.flatMap((f) => (f.t === 'headers' ? [f.stream] : []))),
      ]),
      quietMs: QUIET_MS,
      maxMs: HANG_MS,
      abandon: gaveUp,
    });
    if (result.status !== 200)
      throw new Error(`the waypoint refused the tunnel to its own Service: ${result.status}`);
    if (!result.finished && !gaveUp(result.received))
      throw new Error(`the tunnel was still open ${HANG_MS} ms after the client half-closed`);
    const { requests, malformed } = backends.take();
    if (malformed.length > 0)
      throw new Error(`the backend could not parse what the waypoint sent: ${malformed.join('; ')}`);
    requests.forEach(checkForwarded);
    await this.client.controlRequest();
  }

  healthy(): Promise<void> {
    return this.client.healthy();
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

const NAME_RE = /\.port(\d+)\.frames\.json$/;

export const waypointH2Target: FuzzTarget<WaypointH2Input> = {
  name: 'waypoint-h2',
  async start() {
    return new WaypointH2Session(await WaypointClient.start());
  },
  decode(file, bytes) {
    const port = Number(NAME_RE.exec(file)?.[1]);
    if (!SERVICE_PORTS.includes(port)) throw new Error(`${file}: name it <name>.port<80|81|82>.frames.json`);
    return { port, frames: parseWithBytes(bytes.toString('utf8')) as FrameSpec[] };
  },
  encode(input) {
    return {
      extension: `.port${input.port}.frames.json`,
      bytes: Buffer.from(stringifyWithBytes(input.frames) + '\n'),
    };
  },
};
