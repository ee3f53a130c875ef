// One request and its response, whichever way it arrived: an HTTP/1.1 request, an HTTP/2 stream, or an
// HTTP/1.1 request with an Upgrade the echo declines (Node hands those over as a raw socket). The
// answering code sees only this, so HTTP/1.1 and HTTP/2 get the same JSON and the same steering.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { ServerResponse } from 'node:http';
import { constants as h2constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** What the echo needs of a response; Node's HTTP/1.1 and HTTP/2 (compat) responses both fit. */
export interface ResponseSink extends Writable {
  readonly headersSent: boolean;
  setHeader(name: string, value: string | number | readonly string[]): unknown;
  writeHead(status: number): unknown;
  addTrailers(trailers: OutgoingHttpHeaders): void;
}

export interface Exchange {
  readonly h2: boolean;
  /** "1.1" or "2.0" (or "1.0"), as Node reports it. */
  readonly httpVersion: string;
  readonly method: string;
  /** The request target as received (:path on HTTP/2). */
  readonly url: string;
  /** Host, or :authority on HTTP/2. */
  readonly host: string;
  /** As Node presents them: lower-case names, repeats joined with ", " (set-cookie: a list). */
  readonly headers: Record<string, string | string[]>;
  readonly rawHeaders: readonly string[];
  readonly peer: Endpoint;
  readonly local: Endpoint;
  /** The request body; reading it to its end also collects the trailers. */
  readonly body: AsyncIterable<Buffer>;
  /** Trailers received after the body: complete once `body` has been read to its end. */
  trailers(): Record<string, string | string[]>;
  /** Reads the body to nowhere, for answers that ignore it (so the peer is not stalled by flow control). */
  discardBody(): void;
  readonly res: ResponseSink;
  /** Breaks this request off as a failing upstream would: a TCP reset on HTTP/1.1 (the whole
   *  connection, like the workload crashing), RST_STREAM on HTTP/2 (this stream only). */
  reset(): void;
}

function present(headers: IncomingHttpHeaders | NodeJS.Dict<string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = value;
  return out;
}

function endpoints(socket: Socket): { peer: Endpoint; local: Endpoint } {
  return {
    peer: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
    local: { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
  };
}

export function http1Exchange(req: IncomingMessage, res: ServerResponse): Exchange {
  return {
    h2: false,
    httpVersion: req.httpVersion,
    method: req.method ?? '',
    url: req.url ?? '',
    host: req.headers.host ?? '',
    headers: present(req.headers),
    rawHeaders: req.rawHeaders,
    ...endpoints(req.socket),
    body: req,
    trailers: () => present(req.trailers),
    discardBody: () => void req.resume(),
    res,
    reset: () => void req.socket.resetAndDestroy(),
  };
}

export function http2Exchange(req: Http2ServerRequest, res: Http2ServerResponse): Exchange {
  return {
    h2: true,
    httpVersion: req.httpVersion,
    method: req.method,
    url: req.url,
    host: req.authority ?? req.headers.host ?? '',
    headers: present(req.headers),
    rawHeaders: req.rawHeaders,
    ...endpoints(req.socket),
    body: req,
    trailers: () => present(req.trailers),
    discardBody: () => void req.resume(),
    res,
    reset: () => req.stream.close(h2constants.NGHTTP2_INTERNAL_ERROR),
  };
}

/**
 * A request Node parsed as an upgrade, answered as an ordinary one on its raw socket. Node stops parsing
 * at the headers, so the body is read here: Content-Length bytes from `head` and then the socket (a
 * chunked body is not read). The answer says Connection: close, as the socket cannot go back to Node's
 * parser; reading the body first keeps the close a FIN rather than a reset from unread data.
 */
export function declinedUpgradeExchange(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Exchange & { readonly res: ServerResponse } {
  const res = new ServerResponse(req);
  res.setHeader('connection', 'close');
  res.assignSocket(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.end();
  });
  const length = Number(req.headers['content-length'] ?? 0);
  const body = upgradeBody(socket, head, Number.isSafeInteger(length) && length > 0 ? length : 0);
  return {
    ...http1Exchange(req, res),
    res,
    body,
    trailers: () => ({}),
    discardBody: () => void drain(body),
  };
}

async function* upgradeBody(socket: Socket, head: Buffer, length: number): AsyncGenerator<Buffer> {
  let left = length;
  if (head.length > 0 && left > 0) {
    yield head.subarray(0, left);
    left -= Math.min(left, head.length);
  }
  while (left > 0) {
    const chunk = await nextChunk(socket);
    if (chunk === undefined) return;
    // Bytes past the body would be a pipelined request; the answer closes the connection instead.
    yield chunk.subarray(0, left);
    left -= Math.min(left, chunk.length);
  }
}

/** The socket's next chunk, or undefined at its end; leaves the socket paused. */
function nextChunk(socket: Socket): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    if (socket.readableEnded || socket.destroyed) return resolve(undefined);
    const done = (chunk: Buffer | undefined): void => {
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve(chunk);
    };
    const onData = (chunk: Buffer): void => done(chunk);
    const onEnd = (): void => done(undefined);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.resume();
  });
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _chunk of body);
}
