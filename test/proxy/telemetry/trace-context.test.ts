// proxy/telemetry/trace-context.ts against the W3C Trace Context rules (the cases of the W3C test suite
// that apply to a server that reads and forwards the headers), and x-request-id handling.
import t from 'tap';
import {
  childContext,
  formatTraceparent,
  parseTraceContext,
  parseTraceparent,
  parseTracestate,
  requestId,
  rootContext,
} from '../../../proxy/telemetry/trace-context.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('traceparent: valid headers', async (t) => {
  t.same(parseTraceparent(VALID), {
    traceId: TRACE_ID,
    spanId: SPAN_ID,
    sampled: true,
    traceState: undefined,
  });
  t.equal(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-00`)?.sampled, false);
  t.equal(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-02`)?.sampled, false, 'only bit 0 is sampled');
  t.equal(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-03`)?.sampled, true, 'unknown flag bits are ignored');
  t.equal(parseTraceparent([VALID])?.traceId, TRACE_ID, 'a single value in an array');
});

t.test('traceparent: a later version is read by its first four fields', async (t) => {
  const future = parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-01-what-the-future-will-be-like`);
  t.same(future, { traceId: TRACE_ID, spanId: SPAN_ID, sampled: true, traceState: undefined });
  t.equal(parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-01`)?.traceId, TRACE_ID, 'no extra fields');
  t.equal(parseTraceparent(`cc-${TRACE_ID}-${SPAN_ID}-01.what`), undefined, 'extra data must follow a dash');
  t.equal(formatTraceparent(future ?? rootContext(false)), VALID, 'forwarded as version 00');
});

t.test('traceparent: invalid headers are rejected', async (t) => {
  const invalid: Record<string, string | string[] | undefined> = {
    absent: undefined,
    empty: '',
    'upper-case trace id': `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`,
    'upper-case parent id': `00-${TRACE_ID}-00F067AA0BA902B7-01`,
    'upper-case version': `0A-${TRACE_ID}-${SPAN_ID}-01`,
    'upper-case flags': `00-${TRACE_ID}-${SPAN_ID}-0F`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${SPAN_ID}-01`,
    'all-zero parent id': `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
    'version ff': `ff-${TRACE_ID}-${SPAN_ID}-01`,
    'version 00 with extra fields': `${VALID}-extra`,
    'version 00 with trailing data': `${VALID}x`,
    'too short': `00-${TRACE_ID}-${SPAN_ID}-1`,
    'short trace id': `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01x`,
    'non-hex trace id': `00-${TRACE_ID.slice(0, 31)}g-${SPAN_ID}-01`,
    'non-hex version': `0g-${TRACE_ID}-${SPAN_ID}-01`,
    'wrong delimiter': `00_${TRACE_ID}_${SPAN_ID}_01`,
    'leading space': ` ${VALID}`,
    'two headers': [VALID, VALID],
    'two headers joined by Node': `${VALID}, ${VALID}`,
  };
  for (const [name, value] of Object.entries(invalid)) t.equal(parseTraceparent(value), undefined, name);
});

t.test('tracestate: kept only when valid', async (t) => {
  t.equal(
    parseTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
    'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
  );
  t.equal(
    parseTracestate(' congo=t61rcWkgMzE ,, \t,rojo=00f067aa0ba902b7 '),
    'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    'optional whitespace and empty members are dropped',
  );
  t.equal(parseTracestate(['congo=1', 'rojo=2']), 'congo=1,rojo=2', 'repeated headers are one list');
  t.equal(
    parseTracestate('fw529a3039@dt=FW4NVEkKAA,ab-c_d*e/f=v a l'),
    'fw529a3039@dt=FW4NVEkKAA,ab-c_d*e/f=v a l',
  );
  t.equal(parseTracestate(undefined), undefined);
  t.equal(parseTracestate(''), undefined);
  t.equal(parseTracestate(' , '), undefined);

  const members = (n: number) => Array.from({ length: n }, (_, i) => `k${i}=v`).join(',');
  t.equal(parseTracestate(members(32)), members(32), '32 members are allowed');
  const bad: Record<string, string> = {
    'upper-case key': 'Congo=t61rcWkgMzE',
    'key starting with a digit': '1congo=x',
    'no equals sign': 'congo',
    'empty key': '=x',
    'empty value': 'congo=',
    'equals sign in the value': 'congo=a=b',
    'control character in the value': 'congo=a\u0001b',
    'non-ASCII value': 'congo=caf\u00e9',
    'duplicate key': 'congo=1,rojo=2,congo=3',
    'tenant part too long': `t@${'a'.repeat(15)}=x`,
    '33 members': members(33),
    'over 512 characters': `a=${'x'.repeat(250)},b=${'x'.repeat(250)},c=${'x'.repeat(10)}`,
  };
  for (const [name, value] of Object.entries(bad)) t.equal(parseTracestate(value), undefined, name);
});

t.test('both headers: tracestate rides on a valid traceparent only', async (t) => {
  t.same(parseTraceContext(VALID, 'congo=t61rcWkgMzE'), {
    traceId: TRACE_ID,
    spanId: SPAN_ID,
    sampled: true,
    traceState: 'congo=t61rcWkgMzE',
  });
  t.equal(parseTraceContext(VALID, 'Bad=1')?.traceState, undefined, 'a bad tracestate is dropped alone');
  t.equal(parseTraceContext(VALID, 'Bad=1')?.traceId, TRACE_ID);
  t.equal(parseTraceContext(`ff-${TRACE_ID}-${SPAN_ID}-01`, 'congo=1'), undefined);
});

t.test('child and root contexts', async (t) => {
  const parent = parseTraceContext(`00-${TRACE_ID}-${SPAN_ID}-00`, 'congo=1');
  if (!parent) throw new Error('fixture did not parse');
  const child = childContext(parent);
  t.equal(child.traceId, TRACE_ID, 'same trace');
  t.match(child.spanId, /^[0-9a-f]{16}$/);
  t.not(child.spanId, SPAN_ID, 'a new span id');
  t.equal(child.sampled, false, 'sampling decision carried');
  t.equal(child.traceState, 'congo=1', 'tracestate carried');
  t.equal(childContext({ ...parent, sampled: true }).sampled, true);
  t.not(childContext(parent).spanId, child.spanId, 'span ids differ per child');

  const root = rootContext(true);
  t.match(root.traceId, /^[0-9a-f]{32}$/);
  t.not(root.traceId, '0'.repeat(32));
  t.equal(root.traceState, undefined);
  t.same(parseTraceparent(formatTraceparent(root)), root, 'format and parse round-trip');
  t.equal(formatTraceparent({ ...root, sampled: false }).slice(-3), '-00');
  t.not(rootContext(false).traceId, root.traceId);
});

t.test('x-request-id', async (t) => {
  t.equal(requestId('3b2e3c9a-8f3a-4a53-9d5e-6f0e2b7a1c44'), '3b2e3c9a-8f3a-4a53-9d5e-6f0e2b7a1c44');
  t.equal(requestId('abc:123/xyz'), 'abc:123/xyz', 'any visible ASCII is kept');
  t.equal(requestId(['only-one']), 'only-one');
  t.equal(requestId('x'.repeat(128)), 'x'.repeat(128), '128 characters is the limit');
  const replaced: Record<string, string | string[] | undefined> = {
    absent: undefined,
    empty: '',
    'inner space': 'abc def',
    'control character': 'abc\u0001',
    'non-ASCII': 'caf\u00e9',
    'too long': 'x'.repeat(129),
    'two headers': ['a', 'b'],
  };
  for (const [name, value] of Object.entries(replaced)) t.match(requestId(value), UUID_V4, name);
  t.not(requestId(undefined), requestId(undefined), 'fresh per request');
});
