// IP addresses and CIDR blocks: the one parser, so agent and waypoint agree on what `10.0.0.1/24` means.
import { isIP } from 'node:net';

export interface Cidr {
  readonly family: 4 | 6;
  /** The address part in canonical form (IPv6 compressed, lower-case). */
  readonly address: string;
  /** A bare IP is a single-address block: /32 for IPv4, /128 for IPv6. */
  readonly prefixLength: number;
}

/**
 * The canonical text of an IP address, or undefined if `text` is not one. Node formats socket addresses
 * canonically, so indexes keyed by canonical text can be read with `socket.remoteAddress` directly.
 */
export function canonicalIp(text: string): string | undefined {
  // Zone ids (`fe80::1%eth0`) name a link on one host; they are never a mesh address.
  if (text.includes('%')) return undefined;
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6) return undefined;
  // The WHATWG URL parser is the built-in IPv6 canonicaliser (RFC 5952 compression, lower case).
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or an IPv6 CIDR; undefined if it is none of those. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const address = canonicalIp(addressText);
  if (address === undefined) return undefined;
  const family = isIP(addressText) as 4 | 6;
  const maxPrefix = family === 4 ? 32 : 128;
  if (slash === -1) return { family, address, prefixLength: maxPrefix };
  const prefixText = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText)) return undefined;
  const prefixLength = Number(prefixText);
  if (prefixLength > maxPrefix) return undefined;
  return { family, address, prefixLength };
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefixLength}`;
}
