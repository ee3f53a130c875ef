// gRPC unary over cleartext HTTP/2 through @grpc/grpc-js: the bench's echo method
// (`/weft.bench.Echo/Echo`, bytes in, the same bytes out) with raw-buffer (de)serializers, so no code
// generation and no protobuf cost on either side. One channel per connection (a local subchannel pool:
// grpc-js would otherwise share one TCP connection among all clients of a target).
import * as grpc from '@grpc/grpc-js';
import { formatHostPort } from '../../../core/address.js';
import type { LoadConnection, LoadProtocol, RequestDone } from '../types.js';
import type { DialOptions } from './dial.js';

export const ECHO_METHOD = '/weft.bench.Echo/Echo';
const identity = (b: Buffer): Buffer => b;

export interface GrpcOptions extends DialOptions {
  readonly payloadBytes: number;
  /** Concurrent calls per connection. */
  readonly streams: number;
}

class GrpcConnection implements LoadConnection {
  readonly depth: number;
  readonly #client: grpc.Client;
  readonly #payload: Buffer;
  readonly #queue: RequestDone[] = [];
  readonly #calls = new Set<grpc.ClientUnaryCall>();
  #usable = true;

  constructor(client: grpc.Client, payload: Buffer, streams: number) {
    this.#client = client;
    this.#payload = payload;
    this.depth = streams;
  }

  get usable(): boolean {
    return this.#usable;
  }

  request(done: RequestDone): void {
    if (!this.#usable) return done('reset');
    if (this.#calls.size >= this.depth) {
      this.#queue.push(done);
      return;
    }
    const call = this.#client.makeUnaryRequest(
      ECHO_METHOD,
      identity,
      identity,
      this.#payload,
      (err, reply) => {
        this.#calls.delete(call);
        if (err === null) done(reply?.length === this.#payload.length ? undefined : 'protocol');
        else if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED) {
          this.#usable = false;
          done('reset');
        } else done('status');
        if (!this.#usable) {
          // A broken connection takes no more: what waited for it fails now (the runner opens another),
          // and its channel closes once its last call is done.
          for (const waiting of this.#queue.splice(0)) waiting('reset');
          if (this.#calls.size === 0) this.#client.close();
          return;
        }
        const next = this.#queue.shift();
        if (next !== undefined) this.request(next);
      },
    );
    this.#calls.add(call);
  }

  close(): void {
    this.#usable = false;
    // Closing a channel lets its calls run on: cancel them (each then fails with CANCELLED: `reset`).
    for (const call of [...this.#calls]) call.cancel();
    this.#client.close();
    for (const done of this.#queue.splice(0)) done('reset');
  }
}

export function grpcProtocol(options: GrpcOptions): LoadProtocol {
  if (options.localAddress !== undefined)
    throw new Error(
      'grpc: a source address cannot be chosen (grpc-js does not bind one); run the client where its address is the right one',
    );
  const payload = Buffer.alloc(options.payloadBytes, 0x61);
  return {
    name: 'grpc',
    connect: async () => {
      const client = new grpc.Client(formatHostPort(options.target), grpc.credentials.createInsecure(), {
        'grpc.use_local_subchannel_pool': 1,
      });
      try {
        await ready(client, Date.now() + 5000);
      } catch (err) {
        client.close();
        throw err;
      }
      return new GrpcConnection(client, payload, options.streams);
    },
  };
}

/**
 * Resolves once the channel is connected; rejects as soon as its first attempt fails (waitForReady would
 * keep retrying until the deadline, so a refused port took 5 s to report).
 */
function ready(client: grpc.Client, deadline: number): Promise<void> {
  const { READY, TRANSIENT_FAILURE, SHUTDOWN } = grpc.connectivityState;
  const channel = client.getChannel();
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const state = channel.getConnectivityState(true);
      if (state === READY) return resolve();
      if (state === TRANSIENT_FAILURE || state === SHUTDOWN)
        return reject(new Error(`grpc: could not connect to ${channel.getTarget()}`));
      channel.watchConnectivityState(state, deadline, (err) => (err ? reject(err) : check()));
    };
    check();
  });
}
