// How the agent dials onward to workloads, and which addresses it never dials. Socket options live in
// core/tcp.ts (shared with the waypoint); packet marks and transparent binds in capture.ts.
import type net from 'node:net';
import { dialTcp } from '../core/tcp.js';
import { canonicalIp } from '../core/model/ip.js';

/**
 * Opens the agent's onward connection to a workload. `sourceIp` is the original client's address: with
 * capture the socket is bound to it transparently (and marked so it is not captured again); without
 * capture it is ignored and the agent's own address is used.
 */
export type UpstreamDialer = (
  host: string,
  port: number,
  sourceIp: string | undefined,
  timeoutMs: number,
) => Promise<net.Socket>;

/** The dialer without capture: a plain connect from the agent's address. */
export const plainDialer: UpstreamDialer = (host, port, _sourceIp, timeoutMs) =>
  dialTcp(host, port, timeoutMs);

/**
 * Addresses that mean "this host" (loopback, unspecified), in any spelling a client can produce:
 * 127/8, 0/8, ::, ::1, and their IPv4-mapped forms (`::ffff:127.0.0.1`, `::ffff:7f00:1`). Never a
 * destination the agent dials on a workload's behalf.
 */
export function isLoopback(ip: string): boolean {
  const v4 = ipv4Of(ip);
  if (v4 !== undefined) return v4 >>> 24 === 127 || v4 >>> 24 === 0;
  const canonical = canonicalIp(ip);
  return canonical === '::' || canonical === '::1';
}

/** The IPv4 address (as a number) of a dotted or IPv4-mapped IPv6 address, else undefined. */
function ipv4Of(ip: string): number | undefined {
  const canonical = canonicalIp(ip);
  if (canonical === undefined) return undefined;
  let text = canonical;
  if (text.startsWith('::ffff:')) {
    const tail = text.slice(7);
    if (tail.includes('.')) text = tail;
    else {
      const [hi, lo] = tail.split(':').map((h) => parseInt(h, 16));
      if (hi === undefined || lo === undefined || Number.isNaN(hi) || Number.isNaN(lo)) return undefined;
      return ((hi << 16) | lo) >>> 0;
    }
  }
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(text)) return undefined;
  return text.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
}
