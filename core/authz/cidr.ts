// CIDR matching for policy checks (node agent and waypoint), in a form that costs no allocation per check.
//
// core/model/ip.ts is the one parser of policy text (it validates and canonicalises `ipBlocks`,
// `source.ip`, ...). This file turns those already-valid blocks into masked 32-bit words once per config
// change, and reads a connection's address text (as Node reports it) into reusable words, so a check is
// four AND-and-compare steps.
//
// An IPv4-mapped IPv6 connection address (`::ffff:10.0.0.1`, what a dual-stack socket reports for an
// IPv4 peer) is matched as the IPv4 address, as ztunnel does after `to_canonical`. Blocks are matched as
// written: an IPv6 block never contains an IPv4 address and the reverse.
import type { Cidr } from '../model/ip.js';

/**
 * An address as four 32-bit words, most significant first; IPv4 uses `w0` and leaves the rest 0.
 * `family` 0 means the text was not an address: it is then inside no block. Meant to be reused: parse
 * into the same object on every call instead of allocating one per connection.
 */
export class ParsedIp {
  family: 0 | 4 | 6 = 0;
  w0 = 0;
  w1 = 0;
  w2 = 0;
  w3 = 0;
}

/** A block as masked words (signed 32-bit, as `&` yields). Words past the prefix have mask 0. */
export interface CidrMatcher {
  readonly family: 4 | 6;
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
  readonly m0: number;
  readonly m1: number;
  readonly m2: number;
  readonly m3: number;
}

export function compileCidr(cidr: Cidr): CidrMatcher {
  const ip = new ParsedIp();
  // Blocks keep their written family: an IPv6 block in mapped form stays IPv6.
  if (!parseIpInto(cidr.address, ip, false) || ip.family !== cidr.family) {
    throw new TypeError(`not a canonical ${cidr.family === 4 ? 'IPv4' : 'IPv6'} address: ${cidr.address}`);
  }
  const bits = cidr.prefixLength;
  const m0 = wordMask(bits);
  const m1 = wordMask(bits - 32);
  const m2 = wordMask(bits - 64);
  const m3 = wordMask(bits - 96);
  return Object.freeze({
    family: cidr.family,
    w0: ip.w0 & m0,
    w1: ip.w1 & m1,
    w2: ip.w2 & m2,
    w3: ip.w3 & m3,
    m0,
    m1,
    m2,
    m3,
  });
}

/** The mask for one 32-bit word when `bits` of the prefix fall in it (clamped to 0..32). */
function wordMask(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return -1;
  return -1 << (32 - bits);
}

export function cidrContains(block: CidrMatcher, ip: ParsedIp): boolean {
  return (
    block.family === ip.family &&
    (ip.w0 & block.m0) === block.w0 &&
    (ip.w1 & block.m1) === block.w1 &&
    (ip.w2 & block.m2) === block.w2 &&
    (ip.w3 & block.m3) === block.w3
  );
}

/**
 * Reads IPv4 or IPv6 text (an IPv6 zone `%eth0` is ignored) into `out`; false, with family 0, if it is
 * not an address. With `unmapIpv4`, an IPv4-mapped IPv6 address is stored as the IPv4 address.
 */
export function parseIpInto(text: string, out: ParsedIp, unmapIpv4: boolean): boolean {
  out.family = 0;
  out.w0 = out.w1 = out.w2 = out.w3 = 0;
  if (text.indexOf(':') === -1) {
    const v4 = parseIpv4(text, 0, text.length);
    if (v4 < 0) return false;
    out.family = 4;
    out.w0 = v4;
    return true;
  }
  if (!parseIpv6(text, out)) return false;
  if (unmapIpv4 && out.w0 === 0 && out.w1 === 0 && out.w2 === 0xffff) {
    out.family = 4;
    out.w0 = out.w3;
    out.w2 = out.w3 = 0;
  }
  return true;
}

const DOT = 0x2e;
const COLON = 0x3a;

/** Dotted quad in text[start, end) as an unsigned number, or -1. Leading zeros are refused, as by `isIP`. */
function parseIpv4(text: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      dots++;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return -1;
      part = part * 10 + (c - 0x30);
      digits++;
      if (part > 255) return -1;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Scratch for the eight 16-bit groups; parsing is synchronous, so one array serves every call. */
const groups: number[] = [0, 0, 0, 0, 0, 0, 0, 0];

function parseIpv6(text: string, out: ParsedIp): boolean {
  let end = text.indexOf('%');
  if (end === -1) end = text.length;
  else if (end === text.length - 1) return false;
  let count = 0;
  /** Where `::` stands, as a group index; -1 if there is none. */
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === COLON) {
    if (text.charCodeAt(1) !== COLON) return false;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    let j = i;
    let value = 0;
    for (; j < end; j++) {
      const h = hexValue(text.charCodeAt(j));
      if (h < 0) break;
      value = value * 16 + h;
    }
    if (j < end && text.charCodeAt(j) === DOT) {
      // A trailing dotted quad fills the last two groups.
      const v4 = parseIpv4(text, i, end);
      if (v4 < 0 || count > 6) return false;
      groups[count++] = Math.floor(v4 / 0x10000);
      groups[count++] = v4 % 0x10000;
      break;
    }
    if (j === i || j - i > 4 || count === 8) return false;
    groups[count++] = value;
    if (j === end) break;
    if (text.charCodeAt(j) !== COLON) return false;
    if (j + 1 < end && text.charCodeAt(j + 1) === COLON) {
      if (gap !== -1) return false;
      gap = count;
      i = j + 2;
    } else {
      i = j + 1;
      if (i === end) return false;
    }
  }
  if (gap === -1 ? count !== 8 : count > 7) return false;
  if (gap !== -1) {
    // Move the groups written after `::` to the end, then zero the gap.
    const tail = count - gap;
    for (let k = 7; k >= 8 - tail; k--) groups[k] = groups[k - (8 - count)] ?? 0;
    for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  }
  out.family = 6;
  out.w0 = word(0);
  out.w1 = word(2);
  out.w2 = word(4);
  out.w3 = word(6);
  return true;
}

function word(first: number): number {
  return (groups[first] ?? 0) * 0x10000 + (groups[first + 1] ?? 0);
}
