// Target `hbone`: the node agent's HBONE server (mTLS + HTTP/2 CONNECT, agent/inbound.ts) on loopback
// (hbone-server.ts). Four kinds of input, each on its own connection:
// - `request`: a CONNECT-shaped request through Node's HTTP/2 client (random method, :authority,
//   forwarded, extra headers), then the body through the tunnel when it is accepted;
// - `frames`: after a valid mTLS handshake, the preface and SETTINGS, then hand-built frames
//   (http2-frames.ts): bad flags, padding, stream ids, windows, CONTINUATION, header blocks with any
//   bytes;
// - `tls-bytes`: after the handshake, raw bytes instead of HTTP/2 (mutated from corpus streams);
// - `tcp-bytes`: raw bytes instead of a TLS ClientHello (mutated from a recorded one).
//
// The property: the server answers or closes, never crashes the process; a request is answered with a
// status the server's refusal table has (200 only for a CONNECT, and the tunnel then echoes); no input
// without a CONNECT makes the agent dial the workload; and the long-lived control session still gets a
// CONNECT through after every input. After each batch a fresh session must work too, and every server
// connection, registered tunnel and dial the inputs caused must be gone.
import type { ClientHttp2Session, OutgoingHttpHeaders } from 'node:http2';
import fc from 'fast-check';
import type { FuzzSession, FuzzTarget } from '../fuzz-target.js';
import {
  PING_INTERVAL_MS,
  PING_TIMEOUT_MS,
  SERVER_MAX_CONCURRENT_STREAMS,
} from '../../core/hbone/settings.js';
import {
  encodeFrames,
  frameSpecs,
  answeredOrGaveUp,
  goawayCode,
  MARK_PING,
  CLIENT_PREFACE,
  type FrameSpec,
  type HeaderList,
} from '../http2-frames.js';
import { parseWithBytes, stringifyWithBytes } from '../json-bytes.js';
import { connectTcp, connectTls, exchange, openSession, request, type Exchange } from '../loopback.js';
import { mutatedBytes } from '../mutate.js';
import { SERVER_ID, startHboneServer, type HboneServerHarness } from './hbone-server.js';

export type HboneInput =
  | { readonly kind: 'request'; readonly headers: HeaderList; readonly body: string }
  | { readonly kind: 'frames'; readonly frames: readonly FrameSpec[] }
  | { readonly kind: 'tls-bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'tcp-bytes'; readonly bytes: Uint8Array };

/** Statuses agent/inbound.ts answers a CONNECT with (admitted, refused, denied, unreachable). */
const KNOWN_STATUSES = new Set([200, 400, 401, 503]);
/** Leaks are looked for after each batch; closing is asynchronous, so they get this long to go. */
const SETTLE_MS = 5_000;
/**
 * A session nghttp2 gave up on (it sent GOAWAY with an error) stops reading, so it does not see its
 * peer leave; the keepalive ends it (agent/inbound.ts header). Such a connection may outlive its input
 * by this much, and no longer.
 */
const GIVEN_UP_BOUND_MS = PING_INTERVAL_MS + PING_TIMEOUT_MS + 3_000;

const AUTHORITIES = [
  '$TARGET',
  '$TARGET',
  '127.0.0.1:$PORT',
  '[::ffff:127.0.0.1]:$PORT',
  '127.0.0.01:$PORT',
  '127.1:$PORT',
  '127.0.0.1:0$PORT',
  ' 127.0.0.1:$PORT',
  '127.0.0.1:$PORT ',
  '127.0.0.1:15008',
  '127.0.0.1:15000',
  '127.0.0.1:0',
  '127.0.0.1:65536',
  '127.0.0.1:99999999999',
  '127.0.0.1',
  ':$PORT',
  '[::1]:$PORT',
  '::1:$PORT',
  '127.0.0.2:$PORT',
  '10.0.0.1:80',
  'localhost:$PORT',
  '',
  '127.0.0.1:$PORT/x',
  '127.0.0.1:$PORT\u0000',
  'a'.repeat(200),
];
const METHODS = ['CONNECT', 'CONNECT', 'CONNECT', 'GET', 'POST', 'connect', 'OPTIONS', 'PRI', 'CONNECT ', ''];
const FORWARDED = [
  'for=127.0.0.2',
  'for="127.0.0.2:4444"',
  'for="[::1]:80"',
  'for=127.0.0.2;proto=http, for=10.0.0.1',
  'for=unknown',
  'FOR=127.0.0.2',
  'for="',
  'for=' + '9'.repeat(5000),
  ';;;,,,',
  'for=127.0.0.1',
  '',
];
const EXTRA_NAMES = [
  'forwarded',
  'forwarded',
  'baggage',
  'traceparent',
  ':scheme',
  ':path',
  ':protocol',
  'content-length',
  'te',
  'connection',
  'host',
  'upgrade',
  'Forwarded',
  'x-fuzz',
  '',
  ' ',
  'a b',
  ':unknown',
];
const EXTRA_VALUES = [
  ...FORWARDED,
  '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  'https',
  '/',
  '0',
  '-1',
  'trailers',
  'close',
  'h2c',
  'v\r\nx: y',
  'x'.repeat(70_000),
];

const headerList: fc.Arbitrary<HeaderList> = fc
  .tuple(
    fc.option(fc.constantFrom(...METHODS), { freq: 8, nil: undefined }),
    fc.option(fc.oneof(fc.constantFrom(...AUTHORITIES), fc.string({ maxLength: 40 })), {
      freq: 8,
      nil: undefined,
    }),
    fc.array(
      fc.tuple(
        fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...EXTRA_NAMES) }, fc.string({ maxLength: 12 })),
        fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...EXTRA_VALUES) }, fc.string({ maxLength: 40 })),
      ),
      { maxLength: 4 },
    ),
  )
  .map(([method, authority, extras]) => [
    ...(method === undefined ? [] : [[':method', method] as const]),
    ...(authority === undefined ? [] : [[':authority', authority] as const]),
    ...extras,
  ]);

function fill(text: string, vars: Readonly<Record<string, string>>): string {
  return text.replace(/\$[A-Z]+/g, (v) => vars[v] ?? v);
}

function asOutgoing(headers: HeaderList, vars: Readonly<Record<string, string>>): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of headers) {
    const v = fill(value, vars);
    const seen = out[name];
    out[name] = seen === undefined ? v : Array.isArray(seen) ? [...seen, v] : [seen, v];
  }
  return out;
}

/** Whether any header block in `frames` asks for CONNECT (the only thing that may make the agent dial). */
function asksConnect(frames: readonly FrameSpec[]): boolean {
  return frames.some(
    (f) =>
      (f.t === 'headers' || f.t === 'push') && f.headers.some(([n, v]) => n === ':method' && v === 'CONNECT'),
  );
}

class HboneFuzzSession implements FuzzSession<HboneInput> {
  readonly #server: HboneServerHarness;
  readonly #vars: Readonly<Record<string, string>>;
  #control: ClientHttp2Session;
  /** When each connection the server gave up on (but did not close) was left, newest last. */
  readonly #givenUp: number[] = [];

  constructor(server: HboneServerHarness, control: ClientHttp2Session) {
    this.#server = server;
    this.#control = control;
    this.#vars = { $TARGET: `127.0.0.1:${server.echoPort}`, $PORT: String(server.echoPort) };
  }

  arbitrary(seeds: readonly HboneInput[]): fc.Arbitrary<HboneInput> {
    const bytesOf = (kind: 'tls-bytes' | 'tcp-bytes') =>
      seeds.flatMap((s) => (s.kind === kind ? [Buffer.from(s.bytes)] : []));
    const tlsSeeds = bytesOf('tls-bytes');
    const tcpSeeds = bytesOf('tcp-bytes');
    const frameSeeds = seeds.flatMap((s) =>
      s.kind === 'frames' ? [encodeFrames(s.frames, this.#vars)] : [],
    );
    const kinds: fc.WeightedArbitrary<HboneInput>[] = [
      {
        weight: 4,
        arbitrary: fc
          .record({ headers: headerList, body: fc.string({ maxLength: 64 }) })
          .map(({ headers, body }): HboneInput => ({ kind: 'request', headers, body })),
      },
      {
        weight: 5,
        arbitrary: frameSpecs(headerList).map((frames): HboneInput => ({ kind: 'frames', frames })),
      },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ maxLength: 256 })
          .map((bytes): HboneInput => ({ kind: 'tcp-bytes', bytes })),
      },
    ];
    const h2Seeds = [...tlsSeeds, ...frameSeeds];
    if (h2Seeds.length > 0)
      kinds.push({
        weight: 3,
        arbitrary: mutatedBytes(h2Seeds, { dictionary: [CLIENT_PREFACE.toString('latin1')] }).map(
          (bytes): HboneInput => ({ kind: 'tls-bytes', bytes: new Uint8Array(bytes) }),
        ),
      });
    if (tcpSeeds.length > 0)
      kinds.push({
        weight: 1,
        arbitrary: mutatedBytes(tcpSeeds).map((bytes): HboneInput => ({
          kind: 'tcp-bytes',
          bytes: new Uint8Array(bytes),
        })),
      });
    return fc.oneof(...kinds);
  }

  async check(input: HboneInput): Promise<void> {
    const dialsBefore = this.#server.echoSockets.total;
    switch (input.kind) {
      case 'request': {
        const session = await openSession(this.#server.port, this.#server.clientCert, SERVER_ID);
        try {
          const headers = asOutgoing(input.headers, this.#vars);
          const answer = await request(session, headers, input.body);
          if (answer.kind === 'status') {
            if (!KNOWN_STATUSES.has(answer.status)) throw new Error(`answered ${answer.status}`);
            if (answer.status === 200 && headers[':method'] !== 'CONNECT')
              throw new Error(`answered 200 to :method ${String(headers[':method'])}`);
            if (answer.status === 200 && answer.echoed !== input.body)
              throw new Error(`the tunnel returned ${JSON.stringify(answer.echoed)}, not the body sent`);
          }
        } finally {
          session.destroy();
        }
        break;
      }
      case 'frames': {
        const socket = await connectTls(this.#server.port, this.#server.clientCert, SERVER_ID);
        const settings = encodeFrames([{ t: 'settings', flags: 0, params: [] }], this.#vars);
        this.#noteGivenUp(
          await exchange(
            socket,
            Buffer.concat([CLIENT_PREFACE, settings, encodeFrames(input.frames, this.#vars), MARK_PING]),
            answeredOrGaveUp,
          ),
        );
        if (!asksConnect(input.frames) && this.#server.echoSockets.total !== dialsBefore)
          throw new Error('the agent dialled the workload for frames that hold no CONNECT');
        break;
      }
      case 'tls-bytes':
        this.#noteGivenUp(
          await exchange(
            await connectTls(this.#server.port, this.#server.clientCert, SERVER_ID),
            input.bytes,
          ),
        );
        break;
      case 'tcp-bytes':
        await exchange(await connectTcp(this.#server.port), input.bytes);
        if (this.#server.echoSockets.total !== dialsBefore)
          throw new Error('the agent dialled the workload for bytes that are not even TLS');
        break;
    }
    await this.#controlRequest(this.#control, 'the long-lived control session');
  }

  #noteGivenUp(result: Exchange): void {
    const code = goawayCode(result.received);
    if (code !== undefined && code !== 0 && !result.closedByServer) this.#givenUp.push(Date.now());
  }

  async #controlRequest(session: ClientHttp2Session, which: string): Promise<void> {
    const answer = await request(
      session,
      { ':method': 'CONNECT', ':authority': this.#vars.$TARGET! },
      'control',
    );
    if (answer.kind !== 'status' || answer.status !== 200 || answer.echoed !== 'control')
      throw new Error(`a well-formed CONNECT on ${which} failed: ${JSON.stringify(answer)}`);
  }

  async healthy(): Promise<void> {
    const fresh = await openSession(this.#server.port, this.#server.clientCert, SERVER_ID);
    try {
      await this.#controlRequest(fresh, 'a fresh session');
    } finally {
      fresh.destroy();
    }
    // Only the control session's connection may remain, plus the sessions given up on within the
    // keepalive bound, which keep their tunnels until then; nothing else may outlive its input.
    const givenUp = this.#givenUp.filter((at) => at > Date.now() - GIVEN_UP_BOUND_MS).length;
    await this.#server.serverSockets.whenAtMost(1 + givenUp, SETTLE_MS, 'server-side connections');
    await until(
      () => this.#server.connections.size <= givenUp * SERVER_MAX_CONCURRENT_STREAMS,
      SETTLE_MS,
      () => `${this.#server.connections.size} tunnels still registered (${givenUp} sessions given up on)`,
    );
    await this.#server.echoSockets.whenAtMost(
      givenUp * SERVER_MAX_CONCURRENT_STREAMS,
      SETTLE_MS,
      'connections to the workload',
    );
  }

  async close(): Promise<void> {
    this.#control.destroy();
    await this.#server.close();
  }
}

/** Polls `done` (the registry has no change event); rejects with `why()` after `timeoutMs`. */
async function until(done: () => boolean, timeoutMs: number, why: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(why());
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Input files: `<name>.request.json`, `<name>.frames.json`, `<name>.tls.bin`, `<name>.tcp.bin`. */
const SUFFIXES = {
  request: '.request.json',
  frames: '.frames.json',
  'tls-bytes': '.tls.bin',
  'tcp-bytes': '.tcp.bin',
} as const;

export const hboneTarget: FuzzTarget<HboneInput> = {
  name: 'hbone',
  async start() {
    const server = await startHboneServer();
    const control = await openSession(server.port, server.clientCert, SERVER_ID);
    return new HboneFuzzSession(server, control);
  },
  decode(file, bytes) {
    if (file.endsWith(SUFFIXES['tls-bytes'])) return { kind: 'tls-bytes', bytes: new Uint8Array(bytes) };
    if (file.endsWith(SUFFIXES['tcp-bytes'])) return { kind: 'tcp-bytes', bytes: new Uint8Array(bytes) };
    const parsed = parseWithBytes(bytes.toString('utf8'));
    if (file.endsWith(SUFFIXES.request)) {
      const { headers, body } = parsed as { headers: HeaderList; body: string };
      return { kind: 'request', headers, body };
    }
    if (file.endsWith(SUFFIXES.frames)) return { kind: 'frames', frames: parsed as FrameSpec[] };
    throw new Error(`${file}: not an hbone input (${Object.values(SUFFIXES).join(', ')})`);
  },
  encode(input) {
    const extension = SUFFIXES[input.kind];
    switch (input.kind) {
      case 'request':
        return {
          extension,
          bytes: Buffer.from(stringifyWithBytes({ headers: input.headers, body: input.body }) + '\n'),
        };
      case 'frames':
        return { extension, bytes: Buffer.from(stringifyWithBytes(input.frames) + '\n') };
      default:
        return { extension, bytes: Buffer.from(input.bytes) };
    }
  },
};
