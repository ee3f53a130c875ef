// Socket options every proxied TCP socket gets (agent and waypoint alike), and the tuned outbound dial.
import net from 'node:net';
import { WeftError } from './errors.js';

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
