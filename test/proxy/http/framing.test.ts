// proxy/http/framing.ts: which layer refuses which request-framing trick. Raw bytes go over a TCP socket
// to a Node HTTP server with default (strict) parser settings whose handler applies
// checkRequestFraming and normalizeRequestTarget, as the waypoint will. Each case pins who answers:
// Node's parser (its default 400, no header of ours), the waypoint's checks (`x-refused-by`), or the
// handler (accepted); and whether the handler saw the request head at all. Errors in the body framing
// reach Node's parser only after the 'request' event, so the handler has already seen those requests:
// a forwarder must abort, not finish, the upstream request when the body errors. If a Node upgrade starts
// accepting one of the "node" cases, this test fails and framing.ts needs a check for it.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import t from 'tap';
import { checkRequestFraming, hopByHopHeaders } from '../../../proxy/http/framing.js';
import { normalizeRequestTarget } from '../../../proxy/http/normalize.js';

interface Outcome {
  readonly status: number;
  /** `node`: Node's parser refused; `framing` / `path`: our checks; `accepted`: the handler answered. */
  readonly by: 'node' | 'framing' | 'path' | 'accepted' | 'none';
  readonly body: string;
  /** Whether the request handler was called. */
  readonly head: boolean;
}

let heads = 0;

function handle(req: IncomingMessage, res: ServerResponse): void {
  heads++;
  res.setHeader('connection', 'close');
  const framing = checkRequestFraming({
    protocol: 'http/1',
    httpVersion: req.httpVersion,
    rawHeaders: req.rawHeaders,
  });
  if (!framing.ok) {
    res.writeHead(framing.status, { 'x-refused-by': 'framing' }).end(framing.reason);
    return;
  }
  const path = normalizeRequestTarget(req.url ?? '');
  if (!path.ok) {
    res.writeHead(path.status, { 'x-refused-by': 'path' }).end(path.reason);
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    res
      .writeHead(200, { 'x-accepted': '1' })
      .end(`${path.target} ${Buffer.concat(chunks).toString('latin1')}`);
  });
}

async function exchange(port: number, raw: string): Promise<Outcome> {
  const headsBefore = heads;
  const socket = connect(port, '127.0.0.1');
  // A guard, not a wait: every case ends with the server closing the connection.
  socket.setTimeout(5000, () => socket.destroy());
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.end(Buffer.from(raw, 'latin1'));
  await once(socket, 'close');
  const statusLine = /^HTTP\/1\.1 (\d{3})/.exec(received);
  const head = heads > headsBefore;
  if (statusLine === null) return { status: 0, by: 'none', body: '', head };
  const header = received.slice(0, received.indexOf('\r\n\r\n')).toLowerCase();
  const by = /\r\nx-refused-by: (\w+)/.exec(header)?.[1];
  const body = received.slice(received.indexOf('\r\n\r\n') + 4);
  return {
    status: Number(statusLine[1]),
    by: header.includes('\r\nx-accepted: 1') ? 'accepted' : by === 'framing' || by === 'path' ? by : 'node',
    body,
    head,
  };
}

const HOST = 'Host: web\r\n';
const chunked = (version = '1.1', te = 'chunked'): string =>
  `POST /u HTTP/${version}\r\n${HOST}Transfer-Encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`;

type Case = readonly [label: string, raw: string, expected: Partial<Outcome>];

/** Refused by Node's parser in the head: the handler never sees the request. */
const NODE = (status = 400): Partial<Outcome> => ({ status, by: 'node', head: false });
/** Refused by Node's parser in the body, after the handler has seen the head. */
const NODE_IN_BODY: Partial<Outcome> = { status: 400, by: 'node', head: true };
const FRAMING = (status = 400): Partial<Outcome> => ({ status, by: 'framing' });
const PATH: Partial<Outcome> = { status: 400, by: 'path' };
const accepted = (body?: string): Partial<Outcome> =>
  body === undefined ? { status: 200, by: 'accepted' } : { status: 200, by: 'accepted', body };

const CASES: readonly Case[] = [
  ['a plain request', `GET /a HTTP/1.1\r\n${HOST}\r\n`, accepted('/a ')],
  ['chunked', chunked(), accepted('/u abc')],
  ['chunked, upper-case', chunked('1.1', 'CHUNKED'), accepted('/u abc')],
  [
    'chunk extension',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\n\r\n`,
    accepted('/u abc'),
  ],
  [
    'trailer',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n`,
    accepted('/u abc'),
  ],
  ['Content-Length', `POST /u HTTP/1.1\r\n${HOST}Content-Length: 3\r\n\r\nabc`, accepted('/u abc')],
  ['HTTP/1.0 without Host', 'GET /a HTTP/1.0\r\n\r\n', accepted('/a ')],
  ['obs-text in a value', `GET /a HTTP/1.1\r\n${HOST}X-A: caf\xe9\r\n\r\n`, accepted()],
  [
    'Upgrade: h2c is not acted on',
    `GET /a HTTP/1.1\r\n${HOST}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`,
    accepted(),
  ],

  // Refused by Node's parser.
  [
    'two Content-Length, different',
    `POST /u HTTP/1.1\r\n${HOST}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`,
    NODE(),
  ],
  [
    'two Content-Length, equal',
    `POST /u HTTP/1.1\r\n${HOST}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`,
    NODE(),
  ],
  ['Content-Length list', `POST /u HTTP/1.1\r\n${HOST}Content-Length: 3, 3\r\n\r\nabc`, NODE()],
  ['Content-Length with a sign', `POST /u HTTP/1.1\r\n${HOST}Content-Length: +3\r\n\r\nabc`, NODE()],
  [
    'Content-Length then Transfer-Encoding',
    `POST /u HTTP/1.1\r\n${HOST}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    NODE(),
  ],
  [
    'Transfer-Encoding then Content-Length',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    NODE(),
  ],
  [
    'HTTP/1.0 with both',
    `POST /u HTTP/1.0\r\n${HOST}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc`,
    NODE(),
  ],
  ['chunked twice', chunked('1.1', 'chunked, chunked'), NODE()],
  ['chunked not last', chunked('1.1', 'chunked, gzip'), NODE()],
  [
    'Content-Length in trailers',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n`,
    NODE_IN_BODY,
  ],
  ['obs-fold (SP)', `GET /a HTTP/1.1\r\n${HOST}X-A: b\r\n c\r\n\r\n`, NODE()],
  ['obs-fold (HTAB)', `GET /a HTTP/1.1\r\n${HOST}X-A: b\r\n\tc\r\n\r\n`, NODE()],
  ['space before the first header', `GET /a HTTP/1.1\r\n ${HOST}\r\n`, NODE()],
  [
    'whitespace before the colon',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding : chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    NODE(),
  ],
  ['space in a name', `GET /a HTTP/1.1\r\n${HOST}X A: b\r\n\r\n`, NODE()],
  ['NUL in a value', `GET /a HTTP/1.1\r\n${HOST}X-A: b\x00c\r\n\r\n`, NODE()],
  ['DEL in a value', `GET /a HTTP/1.1\r\n${HOST}X-A: b\x7fc\r\n\r\n`, NODE()],
  [
    'VT in a value',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: \x0bchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    NODE(),
  ],
  ['bare LF line endings', `GET /a HTTP/1.1\nHost: web\n\n`, NODE()],
  ['bare LF after a header', `GET /a HTTP/1.1\r\n${HOST}X-A: b\n\r\n`, NODE()],
  ['bare CR', `GET /a HTTP/1.1\r\n${HOST}X-A: b\rX-B: c\r\n\r\n`, NODE()],
  [
    'bare LF in chunked framing',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n`,
    NODE_IN_BODY,
  ],
  [
    'bad chunk size',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n`,
    NODE_IN_BODY,
  ],
  [
    'no CRLF after chunk data',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n`,
    NODE_IN_BODY,
  ],
  ['HTTP/1.1 without Host', 'GET /a HTTP/1.1\r\n\r\n', NODE()],
  ['lower-case method', `get /a HTTP/1.1\r\n${HOST}\r\n`, NODE()],
  ['HTTP/1.2', `GET /a HTTP/1.2\r\n${HOST}\r\n`, NODE()],
  ['HTAB in the target', `GET /a\tb HTTP/1.1\r\n${HOST}\r\n`, NODE()],
  ['raw UTF-8 in the target', `GET /caf\xc3\xa9 HTTP/1.1\r\n${HOST}\r\n`, NODE()],
  ['NUL in the target', `GET /a\x00b HTTP/1.1\r\n${HOST}\r\n`, NODE()],

  // Through Node, refused by framing.ts.
  ['HTTP/2.0 in an HTTP/1 request line', `GET /a HTTP/2.0\r\n${HOST}\r\n`, FRAMING(505)],
  ['HTTP/0.9 (no version)', 'GET /a\r\n\r\n', FRAMING(505)],
  ['Transfer-Encoding in HTTP/1.0', chunked('1.0'), FRAMING()],
  ['gzip, chunked', chunked('1.1', 'gzip, chunked'), FRAMING(501)],
  // Node refuses these too, but only when it reaches the body, after the 'request' event.
  ['xchunked', chunked('1.1', 'xchunked'), FRAMING(501)],
  ['identity', `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: identity\r\n\r\nabc`, FRAMING(501)],
  ['chunked with a parameter', chunked('1.1', 'chunked;q=1'), FRAMING(501)],
  [
    'two Transfer-Encoding fields',
    `POST /u HTTP/1.1\r\n${HOST}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`,
    FRAMING(501),
  ],
  ['two Host', `GET /a HTTP/1.1\r\nHost: web\r\nHost: admin\r\n\r\n`, FRAMING()],
  ['empty Host', `GET /a HTTP/1.1\r\nHost:\r\n\r\n`, FRAMING()],
  ['Host with a space', `GET /a HTTP/1.1\r\nHost: web admin\r\n\r\n`, FRAMING()],
  ['Host with userinfo', `GET /a HTTP/1.1\r\nHost: user@web\r\n\r\n`, FRAMING()],
  ['Host with a path', `GET /a HTTP/1.1\r\nHost: web/admin\r\n\r\n`, FRAMING()],
  [
    'Connection nominates Content-Length',
    `POST /u HTTP/1.1\r\n${HOST}Connection: close, Content-Length\r\nContent-Length: 3\r\n\r\nabc`,
    FRAMING(),
  ],

  // Through Node, refused by normalize.ts.
  ['absolute-form', `GET http://admin/x HTTP/1.1\r\n${HOST}\r\n`, PATH],
  ['asterisk-form', `OPTIONS * HTTP/1.1\r\n${HOST}\r\n`, PATH],
  ['backslash', `GET /a\\..\\b HTTP/1.1\r\n${HOST}\r\n`, PATH],
  ['fragment', `GET /a#b HTTP/1.1\r\n${HOST}\r\n`, PATH],
  ['%2F', `GET /a%2Fb HTTP/1.1\r\n${HOST}\r\n`, PATH],
  ['above the root', `GET /../etc/passwd HTTP/1.1\r\n${HOST}\r\n`, PATH],
  ['normalized, not refused', `GET /a/%2e/b//c?x=%2F HTTP/1.1\r\n${HOST}\r\n`, accepted('/a/b/c?x=%2F ')],
];

t.test('who refuses what (raw sockets, Node defaults)', async (t) => {
  const server = createServer(handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  for (const [label, raw, expected] of CASES) {
    t.match(await exchange(port, raw), expected, label);
  }
});

t.test('HTTP/2: Host must agree with :authority', async (t) => {
  const h2 = (rawHeaders: string[], authority?: string) =>
    checkRequestFraming({ protocol: 'h2', httpVersion: '2.0', rawHeaders, authority });
  t.match(h2([':authority', 'web'], 'web'), { ok: true }, ':authority alone');
  t.match(h2([':authority', 'web', 'host', 'WEB'], 'web'), { ok: true }, 'same host, other case');
  t.match(h2([':authority', 'web', 'host', 'admin'], 'web'), { ok: false, status: 400 }, 'different');
  t.match(h2(['host', 'a', 'host', 'b'], undefined), { ok: false, status: 400 }, 'two Host');
});

t.test('hop-by-hop headers are not forwarded', async (t) => {
  const names = (raw: string[]): string[] => [...hopByHopHeaders(raw)].sort();
  t.same(names([]), [
    'connection',
    'http2-settings',
    'keep-alive',
    'proxy-connection',
    'transfer-encoding',
    'upgrade',
  ]);
  t.ok(hopByHopHeaders(['Connection', 'close, X-Secret , ,Keep-Alive']).has('x-secret'), 'nominated');
  t.notOk(
    hopByHopHeaders(['Connection', 'Content-Length, Host']).has('content-length'),
    'framing never dropped',
  );
  t.notOk(hopByHopHeaders(['TE', 'trailers']).has('te'), 'TE: trailers is kept (gRPC)');
  t.ok(hopByHopHeaders(['TE', 'gzip']).has('te'), 'other TE is dropped');
});
