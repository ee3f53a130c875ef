// Raw TCP request/response: a request is `payload` bytes, its answer is as many bytes echoed back (the
// bench's echo server), matched to requests in order. Requests on one connection are pipelined.
import type net from 'node:net';
import type { LoadConnection, LoadProtocol, RequestDone } from '../types.js';
import { dial, type DialOptions } from './dial.js';

export interface TcpOptions extends DialOptions {
  readonly payloadBytes: number;
}

class TcpConnection implements LoadConnection {
  readonly depth = 1;
  readonly #socket: net.Socket;
  readonly #payload: Buffer;
  readonly #pending: RequestDone[] = [];
  #received = 0;
  #usable = true;

  constructor(socket: net.Socket, payload: Buffer) {
    this.#socket = socket;
    this.#payload = payload;
    socket.on('data', (chunk: Buffer) => {
      // Counting only: echoed bytes are not copied or compared, so the client costs the same per request.
      this.#received += chunk.length;
      const size = this.#payload.length;
      while (this.#received >= size && this.#pending.length > 0) {
        this.#received -= size;
        this.#pending.shift()!();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.#broken());
  }

  get usable(): boolean {
    return this.#usable;
  }

  request(done: RequestDone): void {
    if (!this.#usable) return done('reset');
    this.#pending.push(done);
    this.#socket.write(this.#payload);
  }

  close(): void {
    this.#socket.destroy();
    this.#broken();
  }

  #broken(): void {
    this.#usable = false;
    for (const done of this.#pending.splice(0)) done('reset');
  }
}

export function tcpProtocol(options: TcpOptions): LoadProtocol {
  const payload = Buffer.alloc(Math.max(1, options.payloadBytes), 0x61);
  return {
    name: 'tcp',
    connect: async () => new TcpConnection(await dial(options), payload),
  };
}
