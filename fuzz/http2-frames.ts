// Hand-built HTTP/2 (RFC 9113) for the server targets: frames of any type, flags, stream and length,
// header blocks in HPACK's simplest form (literal, new name, no Huffman, RFC 7541 §6.2.2) so that any
// bytes can be sent as a name or value, and fast-check arbitraries for frame sequences. Node's own
// client refuses to send most of what a hostile peer would; these bytes go out as they are.
import fc from 'fast-check';

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FRAME_TYPE = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export type HeaderList = readonly (readonly [string, string])[];

/**
 * One frame to send. Header values may hold placeholders (`$TARGET`, `$PORT`) that the target fills
 * in with the addresses of this run's servers, so that committed inputs reach a live backend.
 */
export type FrameSpec =
  | {
      readonly t: 'headers';
      readonly stream: number;
      readonly flags: number;
      readonly headers: HeaderList;
      /** With PADDED: the pad length byte; may claim more padding than the frame holds. */
      readonly pad: number;
      /** Where to cut the block into HEADERS + CONTINUATION (0: no cut). */
      readonly split: number;
    }
  | { readonly t: 'data'; readonly stream: number; readonly flags: number; readonly size: number }
  | {
      readonly t: 'settings';
      readonly flags: number;
      readonly params: readonly (readonly [number, number])[];
    }
  | { readonly t: 'ping'; readonly flags: number; readonly size: number }
  | { readonly t: 'window'; readonly stream: number; readonly increment: number }
  | { readonly t: 'rst'; readonly stream: number; readonly code: number }
  | { readonly t: 'priority'; readonly stream: number; readonly dependsOn: number; readonly weight: number }
  | { readonly t: 'goaway'; readonly lastStream: number; readonly code: number }
  | { readonly t: 'push'; readonly stream: number; readonly promised: number; readonly headers: HeaderList }
  | {
      readonly t: 'raw';
      readonly type: number;
      readonly flags: number;
      readonly stream: number;
      readonly payload: Uint8Array;
    };

const MAX_FRAME_LENGTH = 0xffffff;

export function encodeFrame(type: number, flags: number, stream: number, payload: Uint8Array): Buffer {
  const length = Math.min(payload.length, MAX_FRAME_LENGTH);
  const header = Buffer.alloc(9);
  header.writeUIntBE(length, 0, 3);
  header[3] = type & 0xff;
  header[4] = flags & 0xff;
  header.writeUInt32BE(stream >>> 0, 5);
  return Buffer.concat([header, payload.subarray(0, length)]);
}

/** RFC 7541 §5.1 integer with an N-bit prefix; `high` holds the bits above the prefix. */
function hpackInteger(value: number, prefixBits: number, high = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const out = [high | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInteger(bytes.length, 7), bytes]);
}

/** A header block of literal fields without indexing, new names, no Huffman coding. */
export function hpackLiterals(headers: HeaderList): Buffer {
  return Buffer.concat(
    headers.flatMap(([name, value]) => [Buffer.from([0x00]), hpackString(name), hpackString(value)]),
  );
}

function substitute(headers: HeaderList, vars: Readonly<Record<string, string>>): HeaderList {
  const fill = (text: string) => text.replace(/\$[A-Z]+/g, (v) => vars[v] ?? v);
  return headers.map(([name, value]) => [fill(name), fill(value)] as const);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

/** The bytes of `frames`, placeholders filled from `vars`. */
export function encodeFrames(frames: readonly FrameSpec[], vars: Readonly<Record<string, string>>): Buffer {
  const out: Buffer[] = [];
  for (const f of frames) {
    switch (f.t) {
      case 'headers': {
        const block = hpackLiterals(substitute(f.headers, vars));
        const padded = (f.flags & FLAG.PADDED) !== 0;
        const prefix = Buffer.concat([
          padded ? Buffer.from([f.pad & 0xff]) : Buffer.alloc(0),
          (f.flags & FLAG.PRIORITY) !== 0 ? Buffer.from([0, 0, 0, 0, 16]) : Buffer.alloc(0),
        ]);
        const padding = padded ? Buffer.alloc(Math.min(f.pad & 0xff, 8)) : Buffer.alloc(0);
        if (f.split > 0 && f.split < block.length) {
          const first = Buffer.concat([prefix, block.subarray(0, f.split), padding]);
          out.push(encodeFrame(FRAME_TYPE.HEADERS, f.flags & ~FLAG.END_HEADERS, f.stream, first));
          out.push(
            encodeFrame(
              FRAME_TYPE.CONTINUATION,
              f.flags & FLAG.END_HEADERS,
              f.stream,
              block.subarray(f.split),
            ),
          );
        } else
          out.push(
            encodeFrame(FRAME_TYPE.HEADERS, f.flags, f.stream, Buffer.concat([prefix, block, padding])),
          );
        break;
      }
      case 'data':
        out.push(encodeFrame(FRAME_TYPE.DATA, f.flags, f.stream, Buffer.alloc(f.size, 0x61)));
        break;
      case 'settings':
        out.push(
          encodeFrame(
            FRAME_TYPE.SETTINGS,
            f.flags,
            0,
            Buffer.concat(
              f.params.map(([id, value]) => Buffer.concat([Buffer.from([id >> 8, id & 0xff]), u32(value)])),
            ),
          ),
        );
        break;
      case 'ping':
        out.push(encodeFrame(FRAME_TYPE.PING, f.flags, 0, Buffer.alloc(f.size, 0x70)));
        break;
      case 'window':
        out.push(encodeFrame(FRAME_TYPE.WINDOW_UPDATE, 0, f.stream, u32(f.increment)));
        break;
      case 'rst':
        out.push(encodeFrame(FRAME_TYPE.RST_STREAM, 0, f.stream, u32(f.code)));
        break;
      case 'priority':
        out.push(
          encodeFrame(
            FRAME_TYPE.PRIORITY,
            0,
            f.stream,
            Buffer.concat([u32(f.dependsOn), Buffer.from([f.weight & 0xff])]),
          ),
        );
        break;
      case 'goaway':
        out.push(encodeFrame(FRAME_TYPE.GOAWAY, 0, 0, Buffer.concat([u32(f.lastStream), u32(f.code)])));
        break;
      case 'push':
        out.push(
          encodeFrame(
            FRAME_TYPE.PUSH_PROMISE,
            FLAG.END_HEADERS,
            f.stream,
            Buffer.concat([u32(f.promised), hpackLiterals(substitute(f.headers, vars))]),
          ),
        );
        break;
      case 'raw':
        out.push(encodeFrame(f.type, f.flags, f.stream, f.payload));
        break;
    }
  }
  return Buffer.concat(out);
}

/** Client stream ids: mostly valid new odd ids, sometimes 0, even, reused or the largest. */
export const streamId = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(1, 3, 5, 7) },
  { weight: 1, arbitrary: fc.constantFrom(0, 2, 4, 0x7fffffff, 0x80000001) },
  { weight: 1, arbitrary: fc.nat() },
);

const SETTINGS_VALUES = [
  0, 1, 100, 16383, 16384, 65535, 65536, 16777215, 16777216, 0x7fffffff, 0x80000000, 0xffffffff,
];

/** A frame sequence with header blocks drawn from `headerList`. */
export function frameSpecs(headerList: fc.Arbitrary<HeaderList>, maxFrames = 12): fc.Arbitrary<FrameSpec[]> {
  const flags = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(FLAG.END_HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM) },
    { weight: 1, arbitrary: fc.nat(255) },
  );
  const frame: fc.Arbitrary<FrameSpec> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        t: fc.constant('headers' as const),
        stream: streamId,
        flags,
        headers: headerList,
        pad: fc.nat(255),
        split: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.nat(64)),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('data' as const),
        stream: streamId,
        flags: fc.oneof(fc.constantFrom(0, FLAG.END_STREAM), fc.nat(255)),
        size: fc.oneof(fc.nat(64), fc.constantFrom(16384, 16385, 70000)),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant('settings' as const),
        flags: fc.constantFrom(0, 0, 0, FLAG.ACK),
        params: fc.array(fc.tuple(fc.nat(10), fc.constantFrom(...SETTINGS_VALUES)), { maxLength: 4 }),
      }),
    },
    fc.record({
      t: fc.constant('ping' as const),
      flags: fc.constantFrom(0, FLAG.ACK),
      size: fc.constantFrom(8, 8, 0, 7, 9),
    }),
    fc.record({
      t: fc.constant('window' as const),
      stream: fc.oneof(fc.constant(0), streamId),
      increment: fc.constantFrom(0, 1, 65535, 0x7fffffff, 0x80000000),
    }),
    fc.record({
      t: fc.constant('rst' as const),
      stream: streamId,
      code: fc.constantFrom(0, 1, 2, 7, 8, 0xb, 0xffff),
    }),
    fc.record({
      t: fc.constant('priority' as const),
      stream: streamId,
      dependsOn: fc.oneof(streamId, fc.constant(0x80000001)),
      weight: fc.nat(255),
    }),
    fc.record({
      t: fc.constant('goaway' as const),
      lastStream: streamId,
      code: fc.constantFrom(0, 1, 2, 0xb),
    }),
    fc.record({
      t: fc.constant('push' as const),
      stream: streamId,
      promised: fc.constantFrom(2, 4),
      headers: headerList,
    }),
    fc.record({
      t: fc.constant('raw' as const),
      type: fc.oneof(fc.nat(9), fc.integer({ min: 10, max: 255 })),
      flags: fc.nat(255),
      stream: streamId,
      payload: fc.uint8Array({ maxLength: 48 }),
    }),
  );
  return fc.array(frame, { minLength: 1, maxLength: maxFrames });
}

/** A PING sent after an input: its ACK proves the server has processed every frame before it. */
export const PING_MARK = Buffer.from('fuzzdone', 'latin1');
export const MARK_PING = encodeFrame(FRAME_TYPE.PING, 0, 0, PING_MARK);

/** Whether a server's byte stream holds a GOAWAY or the ACK of MARK_PING: the server has answered. */
export function answeredOrGaveUp(received: Buffer): boolean {
  for (let at = 0; at + 9 <= received.length;) {
    const length = received.readUIntBE(at, 3);
    const type = received[at + 3];
    if (type === FRAME_TYPE.GOAWAY) return true;
    if (type === FRAME_TYPE.PING && (received[at + 4]! & FLAG.ACK) !== 0 && at + 17 <= received.length)
      if (received.subarray(at + 9, at + 17).equals(PING_MARK)) return true;
    at += 9 + length;
  }
  return false;
}

/** Whether a server's byte stream holds the ACK of MARK_PING: the session was still processing frames. */
export function pingAnswered(received: Buffer): boolean {
  for (let at = 0; at + 9 <= received.length;) {
    const length = received.readUIntBE(at, 3);
    if (
      received[at + 3] === FRAME_TYPE.PING &&
      (received[at + 4]! & FLAG.ACK) !== 0 &&
      at + 17 <= received.length
    )
      if (received.subarray(at + 9, at + 17).equals(PING_MARK)) return true;
    at += 9 + length;
  }
  return false;
}

/** The error code of the first GOAWAY in a server's byte stream, or undefined when it sent none. */
export function goawayCode(received: Buffer): number | undefined {
  for (let at = 0; at + 9 <= received.length;) {
    const length = received.readUIntBE(at, 3);
    const type = received[at + 3];
    if (type === FRAME_TYPE.GOAWAY && at + 9 + 8 <= received.length) return received.readUInt32BE(at + 9 + 4);
    at += 9 + length;
  }
  return undefined;
}

/**
 * Whether a server's byte stream shows it is done with `streams`: it gave up (GOAWAY), or it
 * acknowledged MARK_PING and ended or reset each of them. Without it, the client waits for quiet.
 */
export function streamsAnswered(streams: readonly number[]): (received: Buffer) => boolean {
  return (received) => {
    const ended = new Set<number>();
    let pinged = false;
    for (let at = 0; at + 9 <= received.length;) {
      const length = received.readUIntBE(at, 3);
      const type = received[at + 3]!;
      const flags = received[at + 4]!;
      const stream = received.readUInt32BE(at + 5) & 0x7fffffff;
      if (type === FRAME_TYPE.GOAWAY) return true;
      if (type === FRAME_TYPE.PING && (flags & FLAG.ACK) !== 0) pinged = true;
      const endsStream =
        (type === FRAME_TYPE.DATA || type === FRAME_TYPE.HEADERS) && (flags & FLAG.END_STREAM) !== 0;
      if (endsStream || type === FRAME_TYPE.RST_STREAM) ended.add(stream);
      at += 9 + length;
    }
    return pinged && streams.every((s) => ended.has(s));
  };
}
