// The `tcp-echo` workload: a plain TCP server that sends back every byte it receives. A client's FIN
// ends the echo stream too (half-close is passed on), so `printf hi | nc` gets `hi` and an end.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { untilStopped } from './echo.js';

function onError(this: Socket): void {
  this.destroy();
}

/** The server, and its open connections so a stop can end them. */
export function createTcpEchoServer(): { server: Server; sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', onError);
    socket.pipe(socket);
  });
  return { server, sockets };
}

export interface TcpEchoOptions {
  readonly host: string;
  readonly port: number;
}

/** Serves until SIGTERM/SIGINT. */
export async function runTcpEcho(options: TcpEchoOptions, out: (line: string) => void): Promise<void> {
  const { server, sockets } = createTcpEchoServer();
  server.listen(options.port, options.host);
  await once(server, 'listening');
  const addr = server.address() as AddressInfo;
  out(`tcp-echo: listening on ${addr.address}:${addr.port}`);
  await untilStopped();
  server.close();
  for (const socket of sockets) socket.destroy();
}
