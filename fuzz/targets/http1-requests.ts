// Generated HTTP/1.x request bytes for the waypoint-http1 target, shaped like the requests that split
// proxies and servers (request smuggling) or slip past path-based policy: duplicate and signed
// Content-Length, Content-Length with Transfer-Encoding, codings around `chunked`, obs-fold, space
// before the colon, bare CR or LF, bad chunk sizes and trailers, odd versions and request-targets,
// Connection nominations, h2c upgrades, long and many headers, and pipelined requests.
import fc from 'fast-check';

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH'];
const ODD_METHODS = ['TRACE', 'CONNECT', 'get', 'G ET', 'PRI', 'GET\t', 'FOO', ''];
const TARGETS = [
  '/',
  '/x?q=1',
  '/rewrite/a',
  '/redirect/a',
  '/admin',
  '/admin/x',
  '/admin/../admin/x',
  '//admin/x',
  '/%2e%2e/admin',
  '/a/%2e%2E/admin/',
  '/a/./b/../c',
  '/caf%C3%A9',
  '/%41dmin/x',
];
const ODD_TARGETS = [
  '/admin%2Fx',
  '/admin%2fx',
  '/a%5Cb',
  '/a\\b',
  '/%00',
  '/%',
  '/%zz',
  '/caf\u00e9',
  '/..',
  '/../x',
  '*',
  'http://echo/x',
  'echo:80',
  '/?a=1#frag',
  '#x',
  '',
  '/' + 'a'.repeat(9000),
  '/a b',
];
const ODD_VERSIONS = ['HTTP/2.0', 'HTTP/0.9', 'HTTP/1.10', 'http/1.1', ''];
const ODD_HOSTS = [
  '',
  'a b',
  'user@echo',
  'echo/x',
  '[::1]:80',
  'ECHO',
  'echo:80',
  'echo.fuzz.svc.cluster.local',
];
const ODD_CONTENT_LENGTHS = ['-1', '+5', '0x5', '5, 5', '5,6', '99999999999999999999', ' 5', '5 ', '0'];
const ODD_TRANSFER_ENCODINGS = [
  'Chunked',
  'chunked, chunked',
  'gzip, chunked',
  'chunked, gzip',
  'xchunked',
  'identity',
  ' chunked',
  'chunked\t',
  'chunked;q=1',
];
const HEADERS: readonly (readonly [string, string])[] = [
  ['Connection', 'close'],
  ['Connection', 'keep-alive'],
  ['Connection', 'Upgrade, HTTP2-Settings'],
  ['Connection', 'x-secret'],
  ['Upgrade', 'h2c'],
  ['Upgrade', 'websocket'],
  ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA'],
  ['Expect', '100-continue'],
  ['TE', 'trailers'],
  ['TE', 'gzip'],
  ['Proxy-Connection', 'keep-alive'],
  ['Keep-Alive', 'timeout=5'],
  ['x-retry', 'yes'],
  ['x-secret', 'nominated'],
  ['Forwarded', 'for=10.0.0.1'],
  ['X-Forwarded-For', '1.2.3.4'],
  ['Trailer', 'x-t'],
  ['Cookie', 'a=1'],
  ['Accept', '*/*'],
];
const ODD_HEADERS: readonly (readonly [string, string])[] = [
  ['Connection', 'content-length'],
  ['Connection', 'host'],
  ['x-long', 'v'.repeat(17_000)],
  ['X: a', 'b'],
  ['x', 'a\u0000b'],
  ['x', 'a\x7fb'],
  ['', 'empty-name'],
  ['x\u00e9', 'v'],
  ['x', '\u00ff'],
];

/** Mostly `usual`, one time in `1 + rarity` something from `odd`: most requests get far into the waypoint. */
function mostly<T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>, rarity = 12): fc.Arbitrary<T> {
  return fc.oneof({ weight: rarity, arbitrary: usual }, { weight: 1, arbitrary: odd });
}

type Line = string;

interface RequestSpec {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly hosts: readonly string[];
  readonly contentLengths: readonly string[];
  readonly transferEncodings: readonly string[];
  readonly others: readonly (readonly [string, string])[];
  readonly obsFold: boolean;
  readonly spaceBeforeColon: boolean;
  readonly manyHeaders: number;
  readonly body: BodySpec;
  readonly eol: '\r\n' | '\n' | '\r';
}

type BodySpec =
  | { readonly kind: 'none' }
  | { readonly kind: 'bytes'; readonly text: string }
  | {
      readonly kind: 'chunked';
      readonly sizes: readonly string[];
      readonly trailer: string | undefined;
      readonly chunkEol: '\r\n' | '\n' | '';
    };

const body: fc.Arbitrary<BodySpec> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' } as const) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('bytes' as const),
      text: fc.constantFrom(
        'hello',
        '',
        'x'.repeat(100),
        '0\r\n\r\nGET /admin HTTP/1.1\r\nHost: echo\r\n\r\n',
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('chunked' as const),
      sizes: fc.array(
        fc.constantFrom('5', '5', '0', 'zz', '-1', 'ffffffffffffffffff', '5;ext=1', '5 ', ' 5', '0x5', '3'),
        { maxLength: 3 },
      ),
      trailer: fc.constantFrom(undefined, 'x-t: 1', 'Content-Length: 5', 'Transfer-Encoding: chunked'),
      chunkEol: fc.constantFrom('\r\n' as const, '\r\n' as const, '\n' as const, '' as const),
    }),
  },
);

/** True one time in twelve. */
const rarely = fc.oneof({ weight: 11, arbitrary: fc.constant(false) }, fc.constant(true));

const requestSpec: fc.Arbitrary<RequestSpec> = fc.record({
  method: mostly(fc.constantFrom(...METHODS), fc.constantFrom(...ODD_METHODS)),
  target: mostly(
    fc.oneof(
      fc.constantFrom(...TARGETS),
      fc.webPath().map((p) => `/${p}`),
    ),
    fc.constantFrom(...ODD_TARGETS),
    4,
  ),
  version: mostly(
    fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
    fc.constantFrom(...ODD_VERSIONS),
  ),
  hosts: mostly<readonly string[]>(
    fc.constant(['echo']),
    fc.array(fc.constantFrom(...ODD_HOSTS, 'echo'), { maxLength: 2 }),
  ),
  contentLengths: mostly<readonly string[]>(
    fc.constant([]),
    fc.array(fc.constantFrom(...ODD_CONTENT_LENGTHS, '5'), { minLength: 1, maxLength: 2 }),
    8,
  ),
  transferEncodings: mostly<readonly string[]>(
    fc.constant([]),
    fc.array(fc.constantFrom(...ODD_TRANSFER_ENCODINGS, 'chunked'), { minLength: 1, maxLength: 2 }),
    8,
  ),
  others: fc
    .tuple(
      fc.array(fc.constantFrom(...HEADERS), { maxLength: 3 }),
      mostly<(typeof ODD_HEADERS)[number] | null>(fc.constant(null), fc.constantFrom(...ODD_HEADERS), 8),
    )
    .map(([usual, odd]) => (odd === null ? usual : [...usual, odd])),
  obsFold: rarely,
  spaceBeforeColon: rarely,
  manyHeaders: fc.oneof({ weight: 12, arbitrary: fc.constant(0) }, fc.constantFrom(100, 2000)),
  body,
  eol: mostly(fc.constant('\r\n' as const), fc.constantFrom('\n' as const, '\r' as const), 10),
});

function chunkedBody(b: Extract<BodySpec, { kind: 'chunked' }>, eol: string): string {
  const chunks = b.sizes.map((size) => {
    const n = Number.parseInt(size, 16);
    const data = Number.isFinite(n) && n > 0 && n < 64 ? 'a'.repeat(n) : 'abc';
    return `${size}${eol}${data}${b.chunkEol}`;
  });
  const trailer = b.trailer === undefined ? '' : `${b.trailer}${eol}`;
  return `${chunks.join('')}0${eol}${trailer}${eol}`;
}

/** The request's bytes (latin1: one byte per character, as on the wire). */
export function renderRequest(spec: RequestSpec): string {
  const { eol } = spec;
  const lines: Line[] = [`${spec.method} ${spec.target} ${spec.version}`.trimEnd()];
  const sep = spec.spaceBeforeColon ? ' : ' : ': ';
  for (const host of spec.hosts) lines.push(`Host${sep}${host}`);
  // The framing follows the body unless the spec sets its own (the odd cases).
  const framed = spec.contentLengths.length > 0 || spec.transferEncodings.length > 0;
  const contentLengths =
    framed || spec.body.kind !== 'bytes' ? spec.contentLengths : [String(spec.body.text.length)];
  const transferEncodings = framed || spec.body.kind !== 'chunked' ? spec.transferEncodings : ['chunked'];
  for (const cl of contentLengths) lines.push(`Content-Length${sep}${cl}`);
  for (const te of transferEncodings) lines.push(`Transfer-Encoding${sep}${te}`);
  for (const [name, value] of spec.others) lines.push(`${name}${sep}${value}`);
  for (let i = 0; i < spec.manyHeaders; i++) lines.push(`x-h${i}: ${i}`);
  if (spec.obsFold) lines.push(' folded-continuation');
  const bodyText =
    spec.body.kind === 'none'
      ? ''
      : spec.body.kind === 'bytes'
        ? spec.body.text
        : chunkedBody(spec.body, eol);
  return `${lines.join(eol)}${eol}${eol}${bodyText}`;
}

/** A request, sometimes two or three pipelined. */
export const http1Requests: fc.Arbitrary<Buffer> = mostly(
  fc.tuple(requestSpec),
  fc.array(requestSpec, { minLength: 2, maxLength: 3 }),
  4,
).map((specs) => Buffer.from(specs.map(renderRequest).join(''), 'latin1'));

/** Tokens the byte mutations insert into corpus requests. */
export const HTTP1_TOKENS = [
  '\r\n',
  '\n',
  '\r',
  ' ',
  '\t',
  ':',
  ',',
  'HTTP/1.1',
  'HTTP/1.0',
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip\r\n',
  'Host: echo\r\n',
  ' folded\r\n',
  '0\r\n\r\n',
  '5\r\nhello\r\n',
  'Connection: close\r\n',
  'Upgrade: h2c\r\n',
  'Expect: 100-continue\r\n',
  '%2F',
  '%2e%2e/',
  '/../',
  '//',
  '\\',
  '#',
  '?',
  '%00',
  '\u00ff',
  'GET / HTTP/1.1\r\nHost: echo\r\n\r\n',
];
