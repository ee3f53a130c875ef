// Address bookkeeping for the lab: pod IPs from each node's CIDR, ClusterIPs from the service CIDR.
// Pure functions over IPv4 integers; the controller supplies what is in use and writes the answer back
// into the manifests, which stay the only record of who has what.
import { parseCidr } from '../../core/model/ip.js';

export interface Ipv4Cidr {
  /** Network address as an unsigned 32-bit integer. */
  readonly base: number;
  readonly prefixLength: number;
  readonly text: string;
}

export function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** `10.77.1.0/24` -> the block; undefined when it is not an IPv4 CIDR or has host bits set. */
export function parseIpv4Cidr(text: string): Ipv4Cidr | undefined {
  const cidr = parseCidr(text);
  if (cidr === undefined || cidr.family !== 4 || !text.includes('/')) return undefined;
  const base = ipv4ToInt(cidr.address);
  if (base === undefined) return undefined;
  if ((base & ~maskOf(cidr.prefixLength)) >>> 0 !== 0) return undefined;
  return { base, prefixLength: cidr.prefixLength, text: `${cidr.address}/${cidr.prefixLength}` };
}

function maskOf(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

export function cidrSize(cidr: Ipv4Cidr): number {
  return 2 ** (32 - cidr.prefixLength);
}

export function cidrContains(cidr: Ipv4Cidr, ip: string): boolean {
  const n = ipv4ToInt(ip);
  return n !== undefined && (n & maskOf(cidr.prefixLength)) >>> 0 === cidr.base;
}

/** The address at `offset` from the start of the block (0 is the network address). */
export function addressAt(cidr: Ipv4Cidr, offset: number): string {
  return intToIpv4(cidr.base + offset);
}

/**
 * The first address of `cidr` from offset `first` upward that is not in `used` and not the block's
 * last (broadcast) address; undefined when the block is full.
 */
export function allocateAddress(
  cidr: Ipv4Cidr,
  used: ReadonlySet<string>,
  first: number,
): string | undefined {
  for (let offset = first; offset < cidrSize(cidr) - 1; offset++) {
    const ip = addressAt(cidr, offset);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}
