// proxy/telemetry/tracing.ts against a real OTLP/HTTP receiver on 127.0.0.1: the exported span's trace
// id and parent are the client's traceparent, the id we propagate is the exported span's, sampling
// follows the parent, and shutdown() flushes. The tracer without an endpoint makes no HTTP request.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { WeftError } from '../../../core/errors.js';
import { parseTraceContext, type TraceContext } from '../../../proxy/telemetry/trace-context.js';
import { SPAN_ATTRIBUTES, createTracer, spanName } from '../../../proxy/telemetry/tracing.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const OTLP_PATH = '/v1/traces';

interface Received {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  readonly body: Buffer;
}

interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: number | string;
  readonly boolValue?: boolean;
}
interface OtlpAttribute {
  readonly key: string;
  readonly value: OtlpValue;
}
interface OtlpSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly traceState?: string;
  readonly name: string;
  readonly kind: number;
  readonly attributes: readonly OtlpAttribute[];
  readonly status?: { readonly code?: number };
}
interface OtlpRequest {
  readonly resourceSpans: readonly {
    readonly resource: { readonly attributes: readonly OtlpAttribute[] };
    readonly scopeSpans: readonly { readonly spans: readonly OtlpSpan[] }[];
  }[];
}

/**
 * A local OTLP receiver: records each request, then answers `status`. An export settles only after
 * the receiver's answer, so once forceFlush() or shutdown() resolves, `requests` holds what was sent:
 * no waiting on timers, and a missing export fails at once instead of hanging.
 */
async function receiver(t: Test, status = 200) {
  const requests: Received[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        contentType: req.headers['content-type'],
        body: Buffer.concat(chunks),
      });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}${OTLP_PATH}`, requests };
}

function spansOf(r: Received): { resource: readonly OtlpAttribute[]; spans: OtlpSpan[] } {
  const body = JSON.parse(r.body.toString('utf8')) as OtlpRequest;
  const resource = body.resourceSpans[0]?.resource.attributes ?? [];
  return { resource, spans: body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)) };
}

function attr(list: readonly OtlpAttribute[], key: string): string | number | boolean | undefined {
  const v = list.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.boolValue;
}

function incoming(flags: '00' | '01', tracestate?: string): TraceContext {
  const ctx = parseTraceContext(`00-${TRACE_ID}-${PARENT_ID}-${flags}`, tracestate);
  if (!ctx) throw new Error('fixture traceparent did not parse');
  return ctx;
}

t.test('a sampled request: exported as a child of the client span, with our id propagated', async (t) => {
  const otlp = await receiver(t);
  // Ratio 0: only the parent's decision can make a span record.
  const tracer = createTracer({
    otlpEndpoint: otlp.url,
    serviceName: 'waypoint.bookinfo',
    attributes: { 'k8s.namespace.name': 'bookinfo' },
    sampleRatio: 0,
  });
  t.teardown(() => tracer.shutdown());
  t.equal(tracer.enabled, true);

  const parent = incoming('01', 'congo=t61rcWkgMzE');
  const name = spanName('reviews.bookinfo.svc.cluster.local', 9080);
  const span = tracer.startServerSpan(parent, name, {
    [SPAN_ATTRIBUTES.method]: 'GET',
    [SPAN_ATTRIBUTES.url]: 'http://reviews.bookinfo.svc.cluster.local:9080/reviews/0',
    [SPAN_ATTRIBUTES.peerIdentity]: 'spiffe://cluster.local/ns/client/sa/sleep',
    [SPAN_ATTRIBUTES.userAgent]: undefined,
  });
  t.equal(span.recording, true);
  t.equal(span.context?.traceId, TRACE_ID, 'same trace');
  t.match(span.context?.spanId, /^[0-9a-f]{16}$/);
  t.not(span.context?.spanId, PARENT_ID, 'our own span id goes upstream');
  t.equal(span.context?.sampled, true);
  t.equal(span.context?.traceState, 'congo=t61rcWkgMzE', 'tracestate passed on as received');

  // An unsampled request in between must not be exported.
  const unsampled = tracer.startServerSpan(incoming('00'), name, {});
  t.equal(unsampled.recording, false);
  t.equal(unsampled.context?.sampled, false);
  t.equal(unsampled.context?.traceId, TRACE_ID);
  t.not(unsampled.context?.spanId, PARENT_ID, 'a new id even when not recorded');
  unsampled.end(200);

  span.end(503, {
    [SPAN_ATTRIBUTES.responseFlags]: 'UH',
    [SPAN_ATTRIBUTES.upstreamCluster]: 'outbound|9080||reviews',
  });
  await tracer.forceFlush();

  t.equal(otlp.requests.length, 1, 'one export');
  const req = otlp.requests[0] as Received;
  t.equal(req.method, 'POST');
  t.equal(req.path, OTLP_PATH);
  t.match(req.contentType, /^application\/json/, 'the HTTP exporter sends OTLP/JSON');
  const { resource, spans } = spansOf(req);
  t.equal(attr(resource, 'service.name'), 'waypoint.bookinfo');
  t.equal(attr(resource, 'k8s.namespace.name'), 'bookinfo');
  t.equal(spans.length, 1, 'only the sampled span');
  const s = spans[0] as OtlpSpan;
  t.equal(s.traceId, TRACE_ID, 'exported trace id is the incoming one');
  t.equal(s.parentSpanId, PARENT_ID, 'exported parent is the client span');
  t.equal(s.spanId, span.context?.spanId, 'the id we propagate is the exported span');
  t.equal(s.traceState, 'congo=t61rcWkgMzE');
  t.equal(s.name, 'reviews.bookinfo.svc.cluster.local:9080/*');
  t.equal(s.kind, 2, 'SPAN_KIND_SERVER');
  t.equal(s.status?.code, 2, 'a 503 marks the span failed');
  t.equal(attr(s.attributes, 'http.method'), 'GET');
  t.equal(attr(s.attributes, 'http.status_code'), 503);
  t.equal(attr(s.attributes, 'response_flags'), 'UH');
  t.equal(attr(s.attributes, 'upstream_cluster'), 'outbound|9080||reviews');
  t.equal(attr(s.attributes, 'istio.source_principal'), 'spiffe://cluster.local/ns/client/sa/sleep');
  t.notOk(
    s.attributes.some((a) => a.key === 'user_agent'),
    'undefined attributes are dropped',
  );
});

t.test('a request without a trace: a root span when sampled, flushed by shutdown()', async (t) => {
  const otlp = await receiver(t);
  const tracer = createTracer({ otlpEndpoint: otlp.url, serviceName: 'waypoint.bookinfo', sampleRatio: 1 });
  const span = tracer.startServerSpan(undefined, 'GET /', {});
  t.equal(span.recording, true);
  t.equal(span.context?.sampled, true);
  t.match(span.context?.traceId, /^[0-9a-f]{32}$/);
  t.equal(span.context?.traceState, undefined);
  span.end(200);
  await tracer.shutdown();
  t.equal(otlp.requests.length, 1, 'shutdown() exported the ended span');
  const s = spansOf(otlp.requests[0] as Received).spans[0];
  t.equal(s?.traceId, span.context?.traceId);
  t.equal(s?.spanId, span.context?.spanId);
  t.notOk(s?.parentSpanId, 'a root span has no parent');
  t.not(s?.status?.code, 2, 'a 200 is not an error');

  const after = tracer.startServerSpan(undefined, 'GET /', {});
  t.equal(after.recording, false, 'nothing records after shutdown');
});

t.test('ratio 0 leaves new traces unrecorded', async (t) => {
  const otlp = await receiver(t);
  const tracer = createTracer({ otlpEndpoint: otlp.url, serviceName: 'w', sampleRatio: 0 });
  t.teardown(() => tracer.shutdown());
  const span = tracer.startServerSpan(undefined, 'GET /', {});
  t.equal(span.recording, false);
  t.equal(span.context?.sampled, false, 'downstream is told not to sample');
  t.match(span.context?.traceId, /^[0-9a-f]{32}$/, 'still a valid context to propagate');
});

t.test('a failed export is logged', async (t) => {
  const otlp = await receiver(t, 400);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const logger = pino({ level: 'warn' }, sink);
  const tracer = createTracer({ otlpEndpoint: otlp.url, serviceName: 'w', sampleRatio: 1, logger });
  t.teardown(() => tracer.shutdown());
  tracer.startServerSpan(undefined, 'GET /', {}).end(200);
  await tracer.forceFlush();
  const warned = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(warned.length, 1);
  t.equal(warned[0]?.msg, 'trace export failed');
  t.equal(warned[0]?.endpoint, otlp.url);
  t.equal(warned[0]?.spans, 1);
});

t.test('without an endpoint: passthrough, no HTTP request at all', async (t) => {
  let httpRequests = 0;
  const onRequest = () => httpRequests++;
  subscribe('http.client.request.start', onRequest);
  t.teardown(() => unsubscribe('http.client.request.start', onRequest));

  const tracer = createTracer({ serviceName: 'waypoint.bookinfo' });
  t.equal(tracer.enabled, false);
  t.equal(
    createTracer({ serviceName: 'other', otlpEndpoint: '' }),
    tracer,
    'one shared tracer, no SDK built',
  );
  const parent = incoming('01', 'congo=1');
  const span = tracer.startServerSpan(parent, 'GET /', { [SPAN_ATTRIBUTES.method]: 'GET' });
  t.equal(span.context, parent, 'the client’s context goes upstream unchanged');
  t.equal(span.recording, false);
  span.end(500);
  const none = tracer.startServerSpan(undefined, 'GET /', {});
  t.equal(none.context, undefined, 'no trace is invented');
  await tracer.forceFlush();
  await tracer.shutdown();
  t.equal(httpRequests, 0, 'no HTTP request was made');

  // The same probe sees the enabled tracer's export, so the zero above means something.
  const otlp = await receiver(t);
  const enabled = createTracer({ otlpEndpoint: otlp.url, serviceName: 'w', sampleRatio: 1 });
  enabled.startServerSpan(undefined, 'GET /', {}).end(200);
  await enabled.shutdown();
  t.equal(httpRequests, 1, 'the probe counts exporter requests');
});

t.test('a bad endpoint is a config error naming it', async (t) => {
  t.throws(() => createTracer({ serviceName: 'w', otlpEndpoint: 'collector:4318' }), {
    code: 'ERR_CONFIG_INVALID',
    message: /otlpEndpoint "collector:4318"/,
  });
  t.throws(() => createTracer({ serviceName: 'w', otlpEndpoint: 'not a url' }), WeftError);
});

t.test('span names follow Istio’s route operation', async (t) => {
  t.equal(spanName('reviews.bookinfo.svc.cluster.local', 9080), 'reviews.bookinfo.svc.cluster.local:9080/*');
  t.equal(spanName('r', 80, { type: 'PathPrefix', value: '/api' }), 'r:80/api*');
  t.equal(spanName('r', 80, { type: 'Exact', value: '/login' }), 'r:80/login');
  t.equal(spanName('r', 80, { type: 'RegularExpression', value: '/v[0-9]+/.*' }), 'r:80/v[0-9]+/.*');
});
