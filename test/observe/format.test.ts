// `weft observe`'s text rows: what decided is named (policy and rule, or the error), requests show
// method, path and status, and a list is aligned column by column.
import t from 'tap';
import type { FlowEvent } from '../../core/flows/event.js';
import { flowDetails, flowTable, streamHeader, streamLine } from '../../observe/format.js';

const denied: FlowEvent = {
  seq: 3,
  time: Date.UTC(2026, 10, 22, 6, 41, 2, 123),
  reporter: { kind: 'agent', name: 'node-2' },
  type: 'close',
  direction: 'inbound',
  path: 'tunnel',
  protocol: 'tcp',
  source: {
    ip: '10.77.1.10',
    port: 40122,
    namespace: 'default',
    pod: 'client',
    identity: 'spiffe://cluster.local/ns/default/sa/client',
  },
  destination: { ip: '10.77.2.11', port: 8080, namespace: 'default', pod: 'echo-v2' },
  verdict: 'DENIED',
  policy: 'default/deny-client',
  rule: 1,
  reason: 'explicitly denied by default/deny-client',
  flags: 'DENY',
  requestBytes: 0,
  responseBytes: 0,
  durationMs: 1,
};

const request: FlowEvent = {
  seq: 9,
  time: Date.UTC(2026, 10, 22, 6, 41, 3, 0),
  reporter: { kind: 'waypoint', name: 'default/waypoint-0' },
  type: 'request',
  path: 'waypoint',
  protocol: 'http',
  source: { ip: '10.77.1.10', port: 40130, namespace: 'default', pod: 'client' },
  destination: { ip: '10.77.2.11', port: 8080, namespace: 'default', pod: 'echo-v2' },
  service: { namespace: 'default', name: 'echo', host: 'echo.default.svc.cluster.local' },
  verdict: 'ALLOWED',
  flags: '-',
  durationMs: 3.4,
  http: { method: 'GET', path: '/hello', status: 200, route: 'default/echo.0' },
};

const failed: FlowEvent = {
  ...request,
  seq: 10,
  type: 'close',
  protocol: 'tcp',
  reporter: { kind: 'agent', name: 'node-1' },
  direction: 'outbound',
  path: 'none',
  destination: { ip: '10.96.0.12', port: 80 },
  verdict: 'ERROR',
  reason: 'service default/x has no ready endpoint for port 80',
  flags: 'CONNECT',
  http: undefined,
};

t.test('details name what decided', async (t) => {
  t.match(flowDetails(denied), /by default\/deny-client rule 1/);
  t.match(flowDetails(denied), /from cluster\.local\/ns\/default\/sa\/client/);
  t.match(flowDetails(request), /^GET \/hello → 200 · svc default\/echo · route default\/echo\.0 · 3ms$/);
  t.match(flowDetails(failed), /CONNECT: service default\/x has no ready endpoint/);
  t.match(flowDetails({ ...denied, policy: undefined, rule: undefined }), /no ALLOW policy matched/);
});

t.test('a list is aligned; a stream row starts where its header does', async (t) => {
  const lines = flowTable([denied, request, failed]);
  t.equal(lines.length, 4);
  const column = (label: string) => lines[0]!.indexOf(label);
  for (const label of ['REPORTER', 'SOURCE', 'DESTINATION', 'PATH', 'TYPE', 'VERDICT', 'DETAILS']) {
    const at = column(label);
    t.ok(at > 0, label);
    for (const row of lines.slice(1)) t.not(row[at - 1], undefined, `${label}: every row reaches it`);
    t.ok(
      lines.slice(1).every((row) => row[at - 1] === ' ' && row[at - 2] === ' '),
      `${label}: every row has a column break before it`,
    );
  }
  t.match(
    lines[1],
    /^06:41:02\.123 +agent node-2 in +default\/client +default\/echo-v2:8080 +tunnel +close +DENIED/,
  );
  t.match(lines[3], /10\.96\.0\.12:80 +none +close +ERROR/);
  t.equal(streamLine(denied).indexOf('agent'), streamHeader().indexOf('REPORTER'));
});
