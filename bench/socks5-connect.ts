// Client side of SOCKS5 CONNECT (RFC 1928, no auth, IPv4), for load clients entering the mesh the way a
// pod does until transparent capture exists.
import net from 'node:net';
import { once } from 'node:events';
import type { HostPort } from '../core/address.js';

async function readExactly(socket: net.Socket, n: number): Promise<Buffer> {
  let buf = Buffer.alloc(0);
  while (buf.length < n) {
    const chunk = socket.read() as Buffer | null;
    if (chunk) {
      buf = Buffer.concat([buf, chunk]);
      continue;
    }
    await Promise.race([
      once(socket, 'readable'),
      once(socket, 'close').then(() => Promise.reject(new Error('socks5: closed during handshake'))),
    ]);
  }
  if (buf.length > n) socket.unshift(buf.subarray(n));
  return buf.subarray(0, n);
}

/** A socket from `localAddress` through the SOCKS5 proxy to `dst`, handshake done. */
export async function socks5Connect(
  proxy: HostPort,
  dst: HostPort,
  localAddress?: string,
): Promise<net.Socket> {
  const socket = net.connect({ host: proxy.host, port: proxy.port, localAddress, noDelay: true });
  await once(socket, 'connect');
  socket.write(Buffer.from([5, 1, 0]));
  const method = await readExactly(socket, 2);
  if (method[1] !== 0) throw new Error(`socks5: method refused (${method.toString('hex')})`);
  const req = Buffer.alloc(10);
  req.set([5, 1, 0, 1]);
  dst.host.split('.').forEach((o, i) => req.writeUInt8(Number(o), 4 + i));
  req.writeUInt16BE(dst.port, 8);
  socket.write(req);
  const reply = await readExactly(socket, 10);
  if (reply[1] !== 0) {
    socket.destroy();
    throw new Error(`socks5: CONNECT ${dst.host}:${dst.port} refused with reply ${reply[1]}`);
  }
  return socket;
}
