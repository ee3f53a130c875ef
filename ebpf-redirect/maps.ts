// The BPF maps' byte layouts, as pure encoders and decoders. Mirrors bpf/weft_capture.h, which is the
// source of truth: a change there bumps WEFT_LAYOUT_VERSION and LAYOUT_VERSION here together (a test
// compares both with the addon's compiled constants).
//
// Byte order: `enrolled` keys are IPv4 addresses as on the wire (network order, the 4 octets in
// order); every other integer is in the host's byte order, as the kernel stores it.
import { endianness } from 'node:os';
import { isIPv4 } from 'node:net';

/** Layout version of the maps below; the pin directory carries it (DEFAULT_PIN_ROOT/v1). */
export const LAYOUT_VERSION = 1;

/**
 * skb->mark / SO_MARK values. Weft owns only the bits in `mask` (0xfff): kube-proxy's 0x4000/0x8000 and
 * Calico's upper 16 bits are outside it, Cilium's magics use another nibble value in 0x0f00, Istio's
 * 0x539/0x111 differ. `steer` routes a packet locally (see routing.ts); `onward` marks the agent's own
 * onward sockets and must never match the steer rule.
 */
export const MARK = { steer: 0x5a1, onward: 0x5af, mask: 0xfff } as const;

/** Map names, which are also their pin file names under the pin directory. */
export const MAP = {
  enrolled: 'enrolled',
  config: 'config',
  stats: 'stats',
  listeners: 'listeners',
} as const;
export type MapName = (typeof MAP)[keyof typeof MAP];

/** `enrolled` value bits. */
export const ENROL_FLAG = { outbound: 0x1, inbound: 0x2, drain: 0x4 } as const;

/** `listeners` SOCKMAP keys. */
export const LISTENER_KEY = { outbound: 0, inbound: 1, hbone: 2 } as const;
export type ListenerName = keyof typeof LISTENER_KEY;

/** The agent's listener ports (informational in `config`; the programs pick listeners by key). */
export const DEFAULT_PORTS = { outbound: 15001, inbound: 15006, hbone: 15008 } as const;

/** `config` flag: fail closed by dropping the SYN silently instead of answering with a RST. */
export const CONFIG_FLAG_FAIL_DROP = 0x1;

/** Enrolment of one pod IP. `drain` keeps existing captured connections working and captures nothing new. */
export interface Enrolment {
  readonly outbound: boolean;
  readonly inbound: boolean;
  readonly drain: boolean;
}

export function enrolmentFlags(e: Enrolment): number {
  return (
    (e.outbound ? ENROL_FLAG.outbound : 0) |
    (e.inbound ? ENROL_FLAG.inbound : 0) |
    (e.drain ? ENROL_FLAG.drain : 0)
  );
}

export function enrolmentFromFlags(flags: number): Enrolment {
  return {
    outbound: (flags & ENROL_FLAG.outbound) !== 0,
    inbound: (flags & ENROL_FLAG.inbound) !== 0,
    drain: (flags & ENROL_FLAG.drain) !== 0,
  };
}

const LITTLE_ENDIAN = endianness() === 'LE';

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  if (LITTLE_ENDIAN) b.writeUInt32LE(value >>> 0);
  else b.writeUInt32BE(value >>> 0);
  return b;
}

function readU32(b: Buffer, offset = 0): number {
  return LITTLE_ENDIAN ? b.readUInt32LE(offset) : b.readUInt32BE(offset);
}

/** `enrolled` key: the address's 4 octets in wire order. */
export function ipv4Key(ip: string): Buffer {
  if (!isIPv4(ip)) throw new TypeError(`not an IPv4 address: "${ip}"`);
  return Buffer.from(ip.split('.').map(Number));
}

export function ipv4FromKey(key: Buffer): string {
  if (key.length !== 4) throw new RangeError(`an IPv4 key is 4 bytes, got ${key.length}`);
  return `${key[0]}.${key[1]}.${key[2]}.${key[3]}`;
}

/** `enrolled` value. */
export function encodeEnrolment(e: Enrolment): Buffer {
  return u32(enrolmentFlags(e));
}

export function decodeEnrolment(value: Buffer): Enrolment {
  return enrolmentFromFlags(readU32(value));
}

/** Key of a one-entry ARRAY map, a `stats` counter, or a `listeners` slot. */
export function indexKey(index: number): Buffer {
  return u32(index);
}

/** `config` entry 0 (struct weft_config, 28 bytes). */
export interface CaptureConfig {
  /** Written by the loader; a pinned map of another version is refused. */
  readonly layoutVersion: number;
  readonly failDrop: boolean;
  readonly steerMark: number;
  readonly onwardMark: number;
  readonly markMask: number;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly hbonePort: number;
}

export const CONFIG_SIZE = 28;

export const DEFAULT_CONFIG: CaptureConfig = {
  layoutVersion: LAYOUT_VERSION,
  failDrop: false,
  steerMark: MARK.steer,
  onwardMark: MARK.onward,
  markMask: MARK.mask,
  outboundPort: DEFAULT_PORTS.outbound,
  inboundPort: DEFAULT_PORTS.inbound,
  hbonePort: DEFAULT_PORTS.hbone,
};

export function encodeConfig(c: CaptureConfig): Buffer {
  const b = Buffer.alloc(CONFIG_SIZE);
  const w32 = (v: number, o: number) =>
    LITTLE_ENDIAN ? b.writeUInt32LE(v >>> 0, o) : b.writeUInt32BE(v >>> 0, o);
  const w16 = (v: number, o: number) => (LITTLE_ENDIAN ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  w32(c.layoutVersion, 0);
  w32(c.failDrop ? CONFIG_FLAG_FAIL_DROP : 0, 4);
  w32(c.steerMark, 8);
  w32(c.onwardMark, 12);
  w32(c.markMask, 16);
  w16(c.outboundPort, 20);
  w16(c.inboundPort, 22);
  w16(c.hbonePort, 24);
  return b;
}

/** Decodes `config`; zero fields (the kernel side's "use the default") are shown as the defaults. */
export function decodeConfig(b: Buffer): CaptureConfig {
  if (b.length < CONFIG_SIZE) throw new RangeError(`config is ${CONFIG_SIZE} bytes, got ${b.length}`);
  const r16 = (o: number) => (LITTLE_ENDIAN ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const or = (v: number, d: number) => (v === 0 ? d : v);
  return {
    layoutVersion: readU32(b, 0),
    failDrop: (readU32(b, 4) & CONFIG_FLAG_FAIL_DROP) !== 0,
    steerMark: or(readU32(b, 8), MARK.steer),
    onwardMark: or(readU32(b, 12), MARK.onward),
    markMask: or(readU32(b, 16), MARK.mask),
    outboundPort: or(r16(20), DEFAULT_PORTS.outbound),
    inboundPort: or(r16(22), DEFAULT_PORTS.inbound),
    hbonePort: or(r16(24), DEFAULT_PORTS.hbone),
  };
}

/** `stats` counters in index order (enum weft_stat); see weft_capture.h for what each one counts. */
export const STAT_NAMES = [
  'seen',
  'skippedMarked',
  'established',
  'capturedOut',
  'capturedIn',
  'capturedHbone',
  'passedNonSyn',
  'passedDraining',
  'noListener',
  'resetSent',
  'fragmentDropped',
  'lookupAssigned',
  'lookupNoListener',
  'lookupFailed',
] as const;
export type StatName = (typeof STAT_NAMES)[number];
export type CaptureStats = Record<StatName, number>;

/** A __u64 value (e.g. a SOCKMAP slot's socket cookie). */
export function decodeU64(value: Buffer): bigint {
  return LITTLE_ENDIAN ? value.readBigUInt64LE(0) : value.readBigUInt64BE(0);
}

/** Sums one PERCPU_ARRAY value of __u64 over the CPUs (each CPU's slot is 8 bytes). */
export function sumPerCpuU64(value: Buffer): number {
  let total = 0n;
  for (let o = 0; o + 8 <= value.length; o += 8) {
    total += LITTLE_ENDIAN ? value.readBigUInt64LE(o) : value.readBigUInt64BE(o);
  }
  return Number(total);
}

/** Builds CaptureStats from the per-key lookups (missing keys count as 0). */
export function decodeStats(lookup: (key: Buffer) => Buffer | null): CaptureStats {
  const out = {} as Record<StatName, number>;
  STAT_NAMES.forEach((name, index) => {
    const value = lookup(indexKey(index));
    out[name] = value ? sumPerCpuU64(value) : 0;
  });
  return out;
}
