// Shared by the echo workload tests: an echo on loopback whose log lines are kept, and the clients the
// tests talk to it with (Node's HTTP/1.1 and HTTP/2 clients, raw sockets); outside peers (curl, nghttp,
// Python) run through test/helpers/exec.ts.
import { once } from 'node:events';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect as h2connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createEchoServer, type EchoReply, type EchoServerOptions } from '../../../lab/workloads/echo.js';

export const IDENTITY = {
  pod: 'echo-v1',
  namespace: 'default',
  service: 'echo',
  version: 'v1',
  node: 'node-1',
};

export type ReplyBody = EchoReply & { error?: string };

export interface Echo {
  readonly port: number;
  /** Every log line written so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw log lines, to check each is one JSON line. */
  readonly lines: string[];
}

export async function startEcho(
  t: { teardown(fn: () => unknown): void },
  options: Omit<EchoServerOptions, 'log'> = {},
): Promise<Echo> {
  const lines: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const echo = createEchoServer(IDENTITY, {
    ...options,
    log: (line) => {
      lines.push(line);
      logs.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  echo.server.listen(0, '127.0.0.1');
  await once(echo.server, 'listening');
  t.teardown(() => echo.close());
  return { port: (echo.server.address() as AddressInfo).port, logs, lines };
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  text: string;
  body: ReplyBody;
}

/** One HTTP/1.1 request on a fresh connection; rejects with the socket error on a reset. */
export function get(
  port: number,
  path: string,
  headers: Record<string, string | string[]> = {},
  body?: string,
  options: { method?: string; trailers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        headers,
        agent: false,
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            trailers: res.trailers,
            text,
            body: (text === '' ? {} : JSON.parse(text)) as ReplyBody,
          }),
        );
      },
    );
    req.on('error', reject);
    if (options.trailers) {
      // Trailers need a chunked body: no Content-Length, so Node chunks it.
      req.write(body ?? '');
      req.addTrailers(options.trailers);
      req.end();
    } else req.end(body);
  });
}

export async function h2session(
  t: { teardown(fn: () => unknown): void },
  port: number,
): Promise<ClientHttp2Session> {
  const session = h2connect(`http://127.0.0.1:${port}`);
  t.teardown(() => session.destroy());
  await once(session, 'remoteSettings');
  return session;
}

export interface H2Answer {
  headers: Record<string, string | string[] | number | undefined>;
  trailers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
  /** The RST_STREAM code the stream closed with (0 when it ended normally). */
  rstCode: number;
}

/** One HTTP/2 request on `session`; resolves when the stream closes, however it closes. */
export function h2request(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: Buffer | string,
  trailers?: OutgoingHttpHeaders,
): Promise<H2Answer> {
  return new Promise((resolve) => {
    const stream = session.request(
      { ':method': body === undefined ? 'GET' : 'POST', ':path': '/', ...headers },
      { waitForTrailers: trailers !== undefined, endStream: body === undefined && trailers === undefined },
    );
    const answer: H2Answer = { headers: {}, trailers: {}, body: Buffer.alloc(0), rstCode: 0 };
    const chunks: Buffer[] = [];
    if (trailers !== undefined) stream.on('wantTrailers', () => stream.sendTrailers(trailers));
    stream.on('response', (h) => (answer.headers = { ...h }));
    stream.on('trailers', (h) => (answer.trailers = { ...h }));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('close', () =>
      resolve({ ...answer, body: Buffer.concat(chunks), rstCode: stream.rstCode ?? 0 }),
    );
    if (body !== undefined || trailers !== undefined) stream.end(body);
  });
}

/** gRPC's length-prefixed message framing: flag byte 0 (uncompressed), 4-byte big-endian length. */
export function grpcFrame(message: string): Buffer {
  const payload = Buffer.from(message);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}
