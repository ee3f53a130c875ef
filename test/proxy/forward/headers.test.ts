// proxy/forward/headers.ts: the header records between the two legs of a proxied request. Requests lose
// hop-by-hop and Connection-nominated fields, pseudo-headers, `expect`, and the h2c upgrade pair
// (`upgrade`, `http2-settings`) unless an upgrade is tunnelled on purpose; `te: trailers` stays for gRPC.
// Responses lose connection-specific and nominated fields; trailers lose pseudo-headers and framing.
import type { IncomingHttpHeaders } from 'node:http';
import t from 'tap';
import {
  forwardRequestHeaders,
  forwardResponseHeaders,
  forwardTrailers,
} from '../../../proxy/forward/headers.js';

/** `req.headers` and `req.rawHeaders` as Node's HTTP/1 parser gives them for these fields. */
function incoming(...raw: string[]): [IncomingHttpHeaders, string[]] {
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const seen = headers[name];
    if (name === 'set-cookie') headers[name] = [...((seen as string[] | undefined) ?? []), value];
    else headers[name] = seen === undefined ? value : `${seen as string}, ${value}`;
  }
  return [headers, raw];
}

const forward = (raw: string[], keepUpgrade?: boolean): Record<string, string | string[]> =>
  forwardRequestHeaders(...incoming(...raw), keepUpgrade);

t.test('request: hop-by-hop fields are dropped, end-to-end ones kept as they are', async (t) => {
  t.strictSame(
    forward([
      'Host',
      'echo.mesh',
      'Connection',
      'keep-alive',
      'Keep-Alive',
      'timeout=5',
      'Proxy-Connection',
      'keep-alive',
      'Transfer-Encoding',
      'chunked',
      'Content-Type',
      'text/plain',
      'Accept',
      'a/b',
      'Accept',
      'c/d',
      'X-Custom',
      'v',
      'Cookie',
      'a=1',
    ]),
    { host: 'echo.mesh', 'content-type': 'text/plain', accept: 'a/b, c/d', 'x-custom': 'v', cookie: 'a=1' },
  );
});

t.test('request: names the Connection header nominates are dropped (any case, any spacing)', async (t) => {
  t.strictSame(
    forward([
      'Connection',
      'X-Hop ,  x-other',
      'connection',
      'X-Third',
      'x-hop',
      '1',
      'X-Other',
      '2',
      'x-third',
      '3',
      'x-kept',
      '4',
    ]),
    { 'x-kept': '4' },
  );
});

t.test('request: pseudo-headers and expect are never forwarded', async (t) => {
  const headers: IncomingHttpHeaders = {
    ':method': 'POST',
    ':path': '/upload',
    ':authority': 'echo',
    ':scheme': 'http',
    expect: '100-continue',
    'content-length': '5',
  };
  t.strictSame(forwardRequestHeaders(headers, [':method', 'POST', 'expect', '100-continue']), {
    'content-length': '5',
  });
});

t.test('request: the h2c upgrade pair is dropped (h2c smuggling)', async (t) => {
  t.strictSame(
    forward([
      'Host',
      'echo',
      'Upgrade',
      'h2c',
      'HTTP2-Settings',
      'AAMAAABkAAQAAP__',
      'Connection',
      'Upgrade',
    ]),
    { host: 'echo' },
    'even when the Connection header does not nominate them',
  );
  t.strictSame(forward(['Upgrade', 'h2c', 'HTTP2-Settings', 'AAMAAABkAAQAAP__', 'x-a', '1']), { 'x-a': '1' });
});

t.test('request: TE is kept only as "trailers" (gRPC needs it end to end)', async (t) => {
  t.strictSame(forward(['TE', 'trailers', 'content-type', 'application/grpc']), {
    te: 'trailers',
    'content-type': 'application/grpc',
  });
  t.strictSame(forward(['TE', 'gzip']), {}, 'another coding is hop-by-hop');
  t.strictSame(forward(['TE', 'trailers, deflate']), {}, 'a list is hop-by-hop');
  t.strictSame(forward(['TE', 'trailers', 'TE', 'gzip']), {}, 'and so is a second field with a coding');
  t.strictSame(forward(['Connection', 'TE', 'TE', 'trailers']), {}, 'nominated by Connection: dropped');
});

t.test('request: TE "trailers" reaches the upstream in the only form HTTP/2 accepts', async (t) => {
  t.strictSame(forward(['TE', 'Trailers']), { te: 'trailers' });
});

t.test('request: upgrade is kept only when an upgrade is tunnelled', async (t) => {
  const raw = ['Host', 'echo', 'Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k=='];
  t.strictSame(forward(raw), { host: 'echo', 'sec-websocket-key': 'k==' }, 'without keepUpgrade');
  t.strictSame(forward(raw, false), { host: 'echo', 'sec-websocket-key': 'k==' }, 'keepUpgrade false');
  t.strictSame(
    forward(raw, true),
    { host: 'echo', 'sec-websocket-key': 'k==', upgrade: 'websocket', connection: 'upgrade' },
    'with keepUpgrade: upgrade and connection: upgrade',
  );
  t.strictSame(
    forward(
      ['Connection', 'Upgrade, X-Hop', 'Upgrade', 'websocket', 'X-Hop', '1', 'HTTP2-Settings', 'x'],
      true,
    ),
    { upgrade: 'websocket', connection: 'upgrade' },
    'only upgrade itself comes back: other nominated names and http2-settings stay dropped',
  );
  t.strictSame(forward(['x-a', '1'], true), { 'x-a': '1' }, 'no upgrade header: nothing is added');
});

t.test('request: the client record is not modified', async (t) => {
  const [headers, raw] = incoming('Connection', 'x-hop', 'x-hop', '1', 'x-a', '2');
  const before = structuredClone(headers);
  const out = forwardRequestHeaders(headers, raw);
  t.strictSame(headers, before);
  t.not(out, headers);
});

t.test('response: connection-specific and nominated fields dropped, numbers become strings', async (t) => {
  t.strictSame(
    forwardResponseHeaders({
      ':status': 200,
      connection: 'keep-alive, X-Hop',
      'keep-alive': 'timeout=5',
      'proxy-connection': 'close',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      'http2-settings': 'x',
      te: 'trailers',
      trailer: 'grpc-status',
      'x-hop': 'secret',
      'content-length': 12,
      'content-type': 'text/plain',
      'set-cookie': ['a=1', 'b=2'],
      'x-empty': undefined,
    }),
    { 'content-length': '12', 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] },
  );
  t.strictSame(forwardResponseHeaders({}), {});
  t.strictSame(
    forwardResponseHeaders({ connection: 'close', 'x-a': 'b' }),
    { 'x-a': 'b' },
    'connection: close names nothing else',
  );
});

t.test('trailers: pseudo-headers, framing and connection fields dropped; undefined when empty', async (t) => {
  t.strictSame(
    forwardTrailers({
      'grpc-status': '0',
      'grpc-message': 'OK',
      'x-checksum': ['a', 'b'],
      ':status': '200',
      'content-length': '3',
      'transfer-encoding': 'chunked',
      connection: 'close',
      'x-undefined': undefined,
    }),
    { 'grpc-status': '0', 'grpc-message': 'OK', 'x-checksum': ['a', 'b'] },
  );
  t.equal(forwardTrailers(undefined), undefined, 'no trailers');
  t.equal(forwardTrailers({}), undefined, 'an empty record');
  t.equal(
    forwardTrailers({ 'content-length': '0', ':status': '200', 'x-undefined': undefined }),
    undefined,
    'nothing left to forward',
  );
});
