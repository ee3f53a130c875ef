// Every socket option the agent sets, in one place: nodelay, keepalive, half-close, connect timeout.
// (Packet marks and transparent binds join here with capture.)
import net from 'node:net';
import { WeftError } from '../core/errors.js';
import { canonicalIp } from '../core/model/ip.js';

/** ztunnel's TCP keepalive: 180 s idle before probing. */
const KEEPALIVE_IDLE_MS = 180_000;

/** Options for proxied sockets: latency over batching, dead-peer detection. */
export function tuneSocket(socket: net.Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
}

/** Connects to `host:port`, tuned, half-open allowed; rejects with the address and cause on failure. */
export function dialTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new WeftError('ERR_CONNECT', `connect to ${host}:${port} timed out after ${timeoutMs} ms`, {
          peer: `${host}:${port}`,
        }),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      tuneSocket(socket);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new WeftError(
          'ERR_CONNECT',
          `connect to ${host}:${port} failed: ${err.message}`,
          { peer: `${host}:${port}` },
          err,
        ),
      );
    });
  });
}

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
