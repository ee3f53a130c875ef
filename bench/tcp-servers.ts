// The bench's workloads: an echo server (request/response load) and a discard server (bulk transfer),
// both plain TCP. The discard server answers a finished upload with its byte count (8 bytes, BE), so
// throughput is measured by what arrived, not by what the client managed to buffer.
import net from 'node:net';
import type { HostPort } from '../core/address.js';

function listen(server: net.Server, addr: HostPort): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: addr.port, host: addr.host, backlog: 1024 }, () => resolve());
  });
}

export async function startEchoServer(addr: HostPort): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await listen(server, addr);
  return server;
}

export async function startDiscardServer(addr: HostPort): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    let bytes = 0;
    s.on('error', () => s.destroy());
    s.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    s.on('end', () => {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(bytes));
      s.end(reply);
    });
  });
  await listen(server, addr);
  return server;
}
