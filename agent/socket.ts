// Every socket option the agent sets, in one place: nodelay, keepalive, half-close, connect timeout.
// (Packet marks and transparent binds join here with capture.)
import net from 'node:net';
import { WeftError } from '../core/errors.js';

/** ztunnel's TCP keepalive: 180 s idle before probing. */
const KEEPALIVE_IDLE_MS = 180_000;

/** Options for proxied sockets: latency over batching, dead-peer detection, FIN passed through. */
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

/** Loopback addresses are never a destination the agent dials on a workload's behalf. */
export function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip.startsWith('::ffff:127.');
}
