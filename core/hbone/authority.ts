// The CONNECT `:authority` of an HBONE stream, `ip:port` or `[ipv6]:port`: the one parser, shared by
// the agent and the waypoint so both refuse exactly the same inputs.
import { canonicalIp } from '../model/ip.js';

export interface HboneTarget {
  /** Canonical IP text, as Node reports socket addresses. */
  readonly ip: string;
  readonly port: number;
}

/** An authority is ~50 bytes; anything longer is refused before it is looked at. */
const MAX_AUTHORITY_CHARS = 64;
const AUTHORITY_RE = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/;

/** Parses `10.0.0.1:8080` or `[fd00::1]:8080`; undefined for anything else (hostnames included). */
export function parseHboneAuthority(authority: string | undefined): HboneTarget | undefined {
  if (authority === undefined || authority.length > MAX_AUTHORITY_CHARS) return undefined;
  const m = AUTHORITY_RE.exec(authority);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  const ipText = m[1] ?? m[2]!;
  const ip = canonicalIp(ipText);
  // An IPv6 address must be bracketed and an IPv4 one must not.
  if (ip === undefined || (m[1] !== undefined) !== ipText.includes(':')) return undefined;
  return { ip, port };
}

export function formatHboneAuthority(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
