// proxy/telemetry/access-log.ts: the record's fields and names (Istio's JSON access-log keys), what is
// left out when unknown, and that it serializes as the one JSON line pino writes.
import t from 'tap';
import {
  ACCESS_LOG_MESSAGE,
  RESPONSE_DETAILS,
  accessLogRecord,
  type AccessLogInput,
} from '../../../proxy/telemetry/access-log.js';

const FORWARDED: AccessLogInput = {
  startTimeMs: Date.UTC(2026, 0, 15, 10, 30, 0, 123),
  method: 'GET',
  path: '/reviews/0?x=%2F',
  protocol: 'HTTP/1.1',
  authority: 'reviews.bookinfo.svc.cluster.local:9080',
  responseCode: 200,
  responseFlags: [],
  responseCodeDetails: RESPONSE_DETAILS.viaUpstream,
  bytesReceived: 17,
  bytesSent: 295,
  durationMs: 12.9,
  upstreamHost: '10.244.1.5:9080',
  upstreamCluster: 'outbound|9080||reviews.bookinfo.svc.cluster.local',
  upstreamServiceTimeMs: 10.4,
  upstreamAttempts: 2,
  forwardedFor: '10.244.2.3',
  userAgent: 'curl/8.5.0',
  requestId: '3b2e3c9a-8f3a-4a53-9d5e-6f0e2b7a1c44',
  sourceIdentity: 'spiffe://cluster.local/ns/client/sa/sleep',
  sourceAddress: '10.244.2.3:52300',
  destinationService: 'reviews.bookinfo.svc.cluster.local',
  routeName: 'bookinfo/reviews.0',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
};

t.test('a forwarded request: every field, under Istio’s names', async (t) => {
  t.same(accessLogRecord(FORWARDED), {
    start_time: '2026-01-15T10:30:00.123Z',
    method: 'GET',
    path: '/reviews/0?x=%2F',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    response_code_details: 'via_upstream',
    bytes_received: 17,
    bytes_sent: 295,
    duration: 12,
    upstream_service_time: 10,
    upstream_host: '10.244.1.5:9080',
    upstream_cluster: 'outbound|9080||reviews.bookinfo.svc.cluster.local',
    upstream_request_attempt_count: 2,
    x_forwarded_for: '10.244.2.3',
    user_agent: 'curl/8.5.0',
    request_id: '3b2e3c9a-8f3a-4a53-9d5e-6f0e2b7a1c44',
    authority: 'reviews.bookinfo.svc.cluster.local:9080',
    downstream_remote_address: '10.244.2.3:52300',
    route_name: 'bookinfo/reviews.0',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    'src.identity': 'spiffe://cluster.local/ns/client/sa/sleep',
    'dst.service': 'reviews.bookinfo.svc.cluster.local',
  });
  t.equal(ACCESS_LOG_MESSAGE, 'request complete');
});

t.test('a local RBAC denial: unknown upstream fields are left out of the JSON', async (t) => {
  const denied = accessLogRecord({
    ...FORWARDED,
    protocol: 'HTTP/2',
    responseCode: 403,
    responseFlags: ['RBAC'],
    responseCodeDetails: 'rbac_access_denied_matched_policy[ns[bookinfo]-policy[deny-sleep]-rule[0]]',
    bytesReceived: 0,
    bytesSent: 19,
    durationMs: 0.4,
    upstreamHost: undefined,
    upstreamCluster: undefined,
    upstreamServiceTimeMs: undefined,
    upstreamAttempts: 0,
    forwardedFor: undefined,
    userAgent: undefined,
    routeName: undefined,
    traceId: undefined,
  });
  t.equal(denied.protocol, 'HTTP/2');
  t.equal(denied.response_code, 403);
  t.equal(denied.response_flags, 'RBAC');
  t.equal(
    denied.response_code_details,
    'rbac_access_denied_matched_policy[ns[bookinfo]-policy[deny-sleep]-rule[0]]',
  );
  t.equal(denied.duration, 0, 'sub-millisecond is 0, as Envoy truncates');
  t.equal(denied.upstream_request_attempt_count, 0);
  const json = JSON.parse(JSON.stringify(denied)) as Record<string, unknown>;
  for (const absent of [
    'upstream_host',
    'upstream_cluster',
    'upstream_service_time',
    'x_forwarded_for',
    'user_agent',
    'route_name',
    'trace_id',
  ]) {
    t.notOk(absent in json, `${absent} is absent`);
  }
  t.equal(json.request_id, FORWARDED.requestId, 'the request id is always there');
});

t.test('several flags, no response, the record is a fresh plain object', async (t) => {
  const input: AccessLogInput = {
    ...FORWARDED,
    responseCode: 0,
    responseFlags: ['UF', 'URX'],
    responseCodeDetails: RESPONSE_DETAILS.upstreamResetBeforeResponse,
  };
  const a = accessLogRecord(input);
  t.equal(a.response_flags, 'UF,URX');
  t.equal(a.response_code, 0);
  t.equal(a.response_code_details, 'upstream_reset_before_response_started');
  t.not(accessLogRecord(input), a, 'a new object each call');
  t.same(accessLogRecord(input), a, 'pure: same input, same record');
});
