// A loopback TCP relay in front of a test server: a second address for the same server, and a way to make
// a peer go silent without closing anything (the bytes a client sends stop reaching the server, so the
// server never sees, let alone answers, what follows: PINGs included).
import net, { type AddressInfo } from 'node:net';

export class TcpRelay {
  readonly #pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();

  private constructor(
    readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpRelay> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const relay = new TcpRelay(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => {
      const upstream = net.connect(targetPort, targetHost);
      const pair = { client, upstream };
      relay.#pairs.add(pair);
      const end = (): void => {
        relay.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return relay;
  }

  /** Stops carrying bytes from every current client to the server; nothing is closed. */
  silenceClients(): void {
    for (const { client, upstream } of this.#pairs) {
      client.unpipe(upstream);
      client.pause();
    }
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    await closed;
  }
}
