// proxy/telemetry/request-metrics.ts: Istio's HTTP metrics as exposed text (names, types, label set,
// bucket boundaries, counts), the label values a waypoint reports, and the label cache's sharing rules.
import { Registry } from 'prom-client';
import t from 'tap';
import type { Service } from '../../../core/model/service.js';
import type { Workload } from '../../../core/model/workload.js';
import {
  ENVOY_DEFAULT_BUCKETS,
  REQUEST_LABEL_NAMES,
  RequestLabelCache,
  RequestMetrics,
  buildRequestLabels,
  waypointTcpLabels,
  type RequestOutcome,
  type RequestPeers,
} from '../../../proxy/telemetry/request-metrics.js';
import { formatResponseFlags } from '../../../proxy/telemetry/response-flags.js';

function workload(name: string, namespace: string, labels: Record<string, string>, sa = 'default'): Workload {
  return {
    kind: 'Pod',
    uid: `${namespace}/${name}`,
    name,
    namespace,
    serviceAccount: sa,
    labels,
    podIps: ['10.0.0.1'],
    nodeName: 'node-1',
    hostNetwork: false,
    phase: 'Running',
    containerPorts: [],
  };
}

function service(name: string, namespace: string): Service {
  return {
    kind: 'Service',
    name,
    namespace,
    labels: {},
    type: 'ClusterIP',
    clusterIps: ['10.96.0.10'],
    headless: false,
    ports: [{ name: 'http', port: 9080, targetPort: 9080, protocol: 'TCP', appProtocol: undefined }],
    selector: { app: name },
  };
}

const SLEEP = workload(
  'sleep-7d9f8c6b5-abcde',
  'client',
  { app: 'sleep', version: 'v1', 'pod-template-hash': '7d9f8c6b5' },
  'sleep',
);
const REVIEWS_SVC = service('reviews', 'bookinfo');
const REVIEWS_V2 = workload(
  'reviews-v2-5b8c7d9f4-xyz12',
  'bookinfo',
  { app: 'reviews', version: 'v2', 'pod-template-hash': '5b8c7d9f4' },
  'bookinfo-reviews',
);
const SLEEP_ID = 'spiffe://cluster.local/ns/client/sa/sleep';
const OPTIONS = { clusterDomain: 'cluster.local' };

const PEERS: RequestPeers = {
  sourceIdentity: SLEEP_ID,
  sourceWorkload: SLEEP,
  destinationService: REVIEWS_SVC,
  destinationWorkload: REVIEWS_V2,
};
const OK: RequestOutcome = { protocol: 'http', responseCode: 200, grpcStatus: undefined, responseFlags: [] };

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses exposition text into samples; enough of the format for prom-client's output. */
function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] as string).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

t.test('exposition: names, types, Istio label set and Envoy buckets', async (t) => {
  const registry = new Registry();
  const metrics = new RequestMetrics(registry);
  const cache = new RequestLabelCache(OPTIONS);
  const labels = cache.labels(PEERS, OK);
  metrics.record(labels, { durationMs: 7, requestBytes: 120, responseBytes: 2048 });
  metrics.record(labels, { durationMs: 30, requestBytes: 120, responseBytes: 2048 });
  metrics.record(cache.labels(PEERS, { ...OK, responseCode: 503, responseFlags: ['UH'] }), {
    durationMs: 0.2,
    requestBytes: 0,
    responseBytes: 19,
  });
  const text = await registry.metrics();

  t.match(text, /^# TYPE istio_requests_total counter$/m);
  for (const h of ['istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes']) {
    t.match(text, new RegExp(`^# TYPE ${h} histogram$`, 'm'), `${h} is a histogram`);
  }

  const all = samples(text);
  const requests = all.filter((s) => s.name === 'istio_requests_total');
  t.equal(requests.length, 2, 'one series per outcome');
  const ok = requests.find((s) => s.labels.response_code === '200');
  t.ok(ok, 'the 200 series exists');
  t.equal(ok?.value, 2);
  t.same(Object.keys(ok?.labels ?? {}).sort(), [...REQUEST_LABEL_NAMES].sort(), 'exactly Istio’s labels');
  t.notOk('destination_port' in (ok?.labels ?? {}), 'Istio has no destination_port label');
  t.same(ok?.labels, {
    reporter: 'waypoint',
    source_workload: 'sleep',
    source_canonical_service: 'sleep',
    source_canonical_revision: 'v1',
    source_workload_namespace: 'client',
    source_principal: SLEEP_ID,
    source_app: 'sleep',
    source_version: 'v1',
    source_cluster: 'Kubernetes',
    destination_service: 'reviews.bookinfo.svc.cluster.local',
    destination_service_namespace: 'bookinfo',
    destination_service_name: 'reviews',
    destination_workload: 'reviews-v2',
    destination_canonical_service: 'reviews',
    destination_canonical_revision: 'v2',
    destination_workload_namespace: 'bookinfo',
    destination_principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews',
    destination_app: 'reviews',
    destination_version: 'v2',
    destination_cluster: 'Kubernetes',
    request_protocol: 'http',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
    response_code: '200',
    grpc_response_status: '',
  });
  const failed = requests.find((s) => s.labels.response_code === '503');
  t.equal(failed?.labels.response_flags, 'UH');
  t.equal(failed?.value, 1);

  const expectedLe = [...ENVOY_DEFAULT_BUCKETS.map(String), '+Inf'];
  for (const h of ['istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes']) {
    const buckets = all.filter((s) => s.name === `${h}_bucket` && s.labels.response_code === '200');
    t.same(
      buckets.map((s) => s.labels.le),
      expectedLe,
      `${h} uses Envoy's default buckets`,
    );
  }
  t.same(ENVOY_DEFAULT_BUCKETS.slice(0, 4), [0.5, 1, 5, 10]);
  t.equal(ENVOY_DEFAULT_BUCKETS.at(-1), 3600000);

  const bucket = (h: string, le: string, code = '200') =>
    all.find((s) => s.name === `${h}_bucket` && s.labels.le === le && s.labels.response_code === code)?.value;
  // Durations 7 and 30 ms: none up to 5, one up to 10, both from 50 on.
  t.equal(bucket('istio_request_duration_milliseconds', '5'), 0);
  t.equal(bucket('istio_request_duration_milliseconds', '10'), 1);
  t.equal(bucket('istio_request_duration_milliseconds', '25'), 1);
  t.equal(bucket('istio_request_duration_milliseconds', '50'), 2);
  t.equal(
    bucket('istio_request_duration_milliseconds', '0.5', '503'),
    1,
    'sub-ms request in the first bucket',
  );
  t.equal(bucket('istio_request_bytes', '100'), 0);
  t.equal(bucket('istio_request_bytes', '250'), 2);
  t.equal(bucket('istio_response_bytes', '1000'), 0);
  t.equal(bucket('istio_response_bytes', '2500'), 2);
  const sum = all.find(
    (s) => s.name === 'istio_request_duration_milliseconds_sum' && s.labels.response_code === '200',
  );
  t.equal(sum?.value, 37);
  const count = all.find((s) => s.name === 'istio_response_bytes_count' && s.labels.response_code === '200');
  t.equal(count?.value, 2);
});

t.test('label values for unknown peers follow istio_stats.cc’s waypoint fallbacks', async (t) => {
  const unknownSource = buildRequestLabels(
    { ...PEERS, sourceWorkload: undefined },
    { protocol: 'http', responseCode: 404, grpcStatus: undefined, responseFlags: ['NR'] },
    OPTIONS,
  );
  t.equal(unknownSource.source_workload, 'unknown');
  t.equal(unknownSource.source_canonical_revision, 'latest', 'Istio reports latest, not unknown');
  t.equal(unknownSource.source_workload_namespace, 'client', 'namespace read from the SPIFFE ID');
  t.equal(unknownSource.source_principal, SLEEP_ID);
  t.equal(unknownSource.source_cluster, 'unknown');
  t.equal(unknownSource.response_flags, 'NR');

  const nothing = buildRequestLabels(
    {
      sourceIdentity: undefined,
      sourceWorkload: undefined,
      destinationService: undefined,
      destinationWorkload: undefined,
    },
    { protocol: 'http', responseCode: 0, grpcStatus: undefined, responseFlags: ['DC'] },
    OPTIONS,
  );
  t.equal(nothing.source_principal, 'unknown');
  t.equal(nothing.source_workload_namespace, 'unknown');
  t.equal(nothing.destination_service, 'unknown');
  t.equal(nothing.destination_principal, 'unknown');
  t.equal(nothing.destination_cluster, 'Kubernetes', 'the waypoint’s own cluster');
  t.equal(nothing.connection_security_policy, 'none');
  t.equal(nothing.response_code, '0', 'no response sent is code 0');

  const noService = buildRequestLabels({ ...PEERS, destinationService: undefined }, OK, OPTIONS);
  t.equal(noService.destination_service, 'reviews', 'falls back to the canonical service');
  t.equal(noService.destination_service_name, 'reviews');
  t.equal(noService.destination_service_namespace, 'bookinfo');

  const options = buildRequestLabels(PEERS, OK, {
    clusterDomain: 'example.org',
    trustDomain: 'td.example',
    clusterId: 'east',
  });
  t.equal(options.destination_service, 'reviews.bookinfo.svc.example.org');
  t.equal(options.destination_principal, 'spiffe://td.example/ns/bookinfo/sa/bookinfo-reviews');
  t.equal(options.source_cluster, 'east');
  t.equal(options.destination_cluster, 'east');
});

t.test('gRPC status and flags', async (t) => {
  const grpc = buildRequestLabels(
    PEERS,
    { protocol: 'grpc', responseCode: 200, grpcStatus: 14, responseFlags: [] },
    OPTIONS,
  );
  t.equal(grpc.request_protocol, 'grpc');
  t.equal(grpc.grpc_response_status, '14');
  const grpcNoStatus = buildRequestLabels(
    PEERS,
    { protocol: 'grpc', responseCode: 503, grpcStatus: undefined, responseFlags: ['UF', 'URX'] },
    OPTIONS,
  );
  t.equal(grpcNoStatus.grpc_response_status, '');
  t.equal(grpcNoStatus.response_flags, 'UF,URX');
  const httpWithStatus = buildRequestLabels(PEERS, { ...OK, grpcStatus: 3 }, OPTIONS);
  t.equal(httpWithStatus.grpc_response_status, '', 'only gRPC requests report a gRPC status');
  t.equal(formatResponseFlags([]), '-');
  t.equal(formatResponseFlags(['RBAC']), 'RBAC');
});

t.test('the cache shares frozen label objects and never serves stale records', async (t) => {
  const cache = new RequestLabelCache(OPTIONS);
  const a = cache.labels(PEERS, OK);
  t.equal(cache.labels({ ...PEERS }, { ...OK }), a, 'same peers and outcome: the same object');
  t.ok(Object.isFrozen(a));
  t.same(a, buildRequestLabels(PEERS, OK, OPTIONS), 'same values as the uncached builder');
  const notFound = cache.labels(PEERS, { ...OK, responseCode: 404, responseFlags: ['NR'] });
  t.not(notFound, a);
  t.equal(notFound.response_code, '404');
  t.equal(cache.size, 1, 'one peer entry for both outcomes');

  const grpc = cache.labels(PEERS, { protocol: 'grpc', responseCode: 200, grpcStatus: 0, responseFlags: [] });
  t.equal(grpc.request_protocol, 'grpc', 'protocol is part of the outcome key');
  t.equal(grpc.grpc_response_status, '0');

  // The store replaces a record whole when it changes: the new object must not hit the old entry.
  const relabelled = { ...REVIEWS_V2, labels: { ...REVIEWS_V2.labels, version: 'v3' } };
  const after = cache.labels({ ...PEERS, destinationWorkload: relabelled }, OK);
  t.equal(after.destination_version, 'v3');
  t.equal(cache.labels(PEERS, OK).destination_version, 'v2');

  const otherId = cache.labels({ ...PEERS, sourceIdentity: 'spiffe://cluster.local/ns/client/sa/other' }, OK);
  t.equal(otherId.source_principal, 'spiffe://cluster.local/ns/client/sa/other');
  t.equal(cache.size, 3);
});

t.test('the cache is bounded', async (t) => {
  const cache = new RequestLabelCache(OPTIONS, 2);
  cache.labels(PEERS, OK);
  cache.labels({ ...PEERS, sourceIdentity: 'spiffe://cluster.local/ns/a/sa/a' }, OK);
  t.equal(cache.size, 2);
  const third = cache.labels({ ...PEERS, sourceIdentity: 'spiffe://cluster.local/ns/b/sa/b' }, OK);
  t.equal(cache.size, 1, 'reaching the cap starts over');
  t.equal(third.source_workload_namespace, 'client');
  // Outcomes per entry are capped too: past the cap labels are still right, just not kept.
  const wrong: number[] = [];
  for (let code = 100; code < 200; code++) {
    if (cache.labels(PEERS, { ...OK, responseCode: code }).response_code !== String(code)) wrong.push(code);
  }
  t.same(wrong, []);
});

t.test(
  'TCP through the waypoint: the request peer labels with request_protocol tcp and the flag',
  async (t) => {
    const tcp = waypointTcpLabels(PEERS, OPTIONS, 'DENY');
    const http = buildRequestLabels(PEERS, OK, OPTIONS);
    t.equal(tcp.reporter, 'waypoint');
    t.equal(tcp.request_protocol, 'tcp');
    t.equal(tcp.response_flags, 'DENY');
    t.equal(tcp.source_principal, http.source_principal, 'same peers as the HTTP labels');
    t.equal(tcp.destination_service, http.destination_service);
    t.notOk('response_code' in tcp, 'no HTTP-only labels');
    t.strictSame(
      Object.keys(tcp).sort(),
      [...REQUEST_LABEL_NAMES].filter((n) => n !== 'response_code' && n !== 'grpc_response_status').sort(),
      'exactly the TCP label set',
    );
  },
);
