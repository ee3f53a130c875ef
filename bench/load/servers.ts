// The bench's trivial servers, each answering as cheaply as its protocol allows, so what the generator
// measures against them is the path (and the generator itself), not the server:
// - HTTP/1.1 and h2c: any request gets 200 with `responseBytes` of body (request bodies are read and
//   dropped), so wrk, h2load and hey can hit the same URL as `weft bench`;
// - gRPC: `/weft.bench.Echo/Echo` answers with the request's bytes.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { formatHostPort, type HostPort } from '../../core/address.js';
import { ECHO_METHOD } from './protocols/grpc.js';

export interface Closable {
  close(): Promise<void>;
}

/** A started server: the port it listens on (the one bound, when asked for port 0) and how to stop it. */
export interface BenchServer extends Closable {
  readonly port: number;
}

function listening(server: http.Server | http2.Http2Server, addr: HostPort): Promise<BenchServer> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: addr.host, port: addr.port, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            if ('closeAllConnections' in server) server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

export function startHttp1Server(addr: HostPort, responseBytes: number): Promise<BenchServer> {
  const body = Buffer.alloc(responseBytes, 0x62);
  const headers = { 'content-type': 'application/octet-stream', 'content-length': String(body.length) };
  const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, headers).end(body));
  });
  return listening(server, addr);
}

export function startH2cServer(addr: HostPort, responseBytes: number): Promise<BenchServer> {
  const body = Buffer.alloc(responseBytes, 0x62);
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200, 'content-length': body.length });
      stream.end(body);
    });
  });
  server.on('sessionError', () => undefined);
  return listening(server, addr);
}

export async function startGrpcEchoServer(addr: HostPort): Promise<BenchServer> {
  const server = new grpc.Server();
  const identity = (b: Buffer): Buffer => b;
  server.addService(
    {
      Echo: {
        path: ECHO_METHOD,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
        callback(null, call.request),
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(formatHostPort(addr), grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
  return { port, close: () => new Promise<void>((done) => server.tryShutdown(() => done())) };
}
