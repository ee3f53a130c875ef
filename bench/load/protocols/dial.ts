// One TCP connection for a load client, connected (or failed) before it is used.
import net from 'node:net';
import type { HostPort } from '../../../core/address.js';
import { socks5Connect } from '../../socks5-connect.js';

export interface DialOptions {
  readonly target: HostPort;
  /** Source address to bind (a pod IP when the client runs in a node's namespace). */
  readonly localAddress?: string | undefined;
  /** Enter through this SOCKS5 proxy (an agent's :15080) instead of connecting directly. */
  readonly socks5?: HostPort | undefined;
}

export function dial(options: DialOptions): Promise<net.Socket> {
  if (options.socks5 !== undefined)
    return socks5Connect(options.socks5, options.target, options.localAddress);
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: options.target.host,
      port: options.target.port,
      localAddress: options.localAddress,
      noDelay: true,
    });
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.off('error', fail);
      resolve(socket);
    });
  });
}
