// Flow filters: parsed from query parameters or flags (bad values named), matched as Hubble's are
// (alternatives within a field, all fields required), and the query form round-trips.
import t from 'tap';
import {
  compileFlowFilter,
  flowFilterQuery,
  parseFlowFilter,
  type FlowFilter,
} from '../../../core/flows/filter.js';
import { parseFlowLine, type FlowEvent } from '../../../core/flows/event.js';

const base: FlowEvent = {
  seq: 1,
  time: 1,
  reporter: { kind: 'agent', name: 'node-2' },
  type: 'close',
  direction: 'inbound',
  path: 'tunnel',
  protocol: 'tcp',
  source: {
    ip: '10.0.1.10',
    port: 41000,
    namespace: 'shop',
    pod: 'client-0',
    identity: 'spiffe://cluster.local/ns/shop/sa/client',
  },
  destination: {
    ip: '10.0.2.10',
    port: 8080,
    namespace: 'data',
    pod: 'db-0',
    identity: 'spiffe://cluster.local/ns/data/sa/db',
  },
  verdict: 'DENIED',
  policy: 'data/deny-shop',
  rule: 0,
  flags: 'DENY',
};

function matches(filter: FlowFilter, event: FlowEvent = base): boolean {
  return compileFlowFilter(filter)(event);
}

t.test('matching', async (t) => {
  t.ok(matches({}), 'an empty filter passes everything');
  t.ok(matches({ namespace: ['data'] }), 'namespace: destination side');
  t.ok(matches({ namespace: ['shop'] }), 'namespace: source side');
  t.notOk(matches({ namespace: ['other'] }));
  t.ok(matches({ pod: ['db-0'] }), 'a bare pod name');
  t.ok(matches({ pod: ['shop/client-0'] }), 'namespace/name');
  t.notOk(matches({ pod: ['data/client-0'] }), 'namespace/name must agree');
  t.ok(matches({ identity: ['cluster.local/ns/data/sa/db'] }), 'identity without the scheme');
  t.ok(matches({ identity: ['spiffe://cluster.local/ns/shop/sa/client'] }));
  t.notOk(matches({ identity: ['cluster.local/ns/shop/sa/other'] }));
  t.ok(matches({ verdict: ['ALLOWED', 'DENIED'] }), 'alternatives');
  t.notOk(matches({ verdict: ['ALLOWED'] }));
  t.ok(matches({ port: [8080] }), 'the destination port');
  t.notOk(matches({ port: [41000] }), 'not the source port');
  t.ok(matches({ protocol: ['tcp'], type: ['close'] }));
  t.notOk(matches({ protocol: ['http'] }));
  t.notOk(matches({ verdict: ['DENIED'], namespace: ['other'] }), 'every field must hold');
  t.ok(
    matches(
      { namespace: ['shop'] },
      {
        ...base,
        source: { ip: '1.1.1.1', port: 1 },
        destination: { ip: '2.2.2.2', port: 80 },
        service: { namespace: 'shop', name: 'web', host: 'web.shop.svc.cluster.local' },
      },
    ),
    'namespace: the addressed Service',
  );
});

t.test('parsing', async (t) => {
  t.same(
    parseFlowFilter(
      new URLSearchParams(
        'verdict=denied&namespace=a,b&namespace=c&port=80&protocol=HTTP&unknown=x',
      ).entries(),
    ),
    { verdict: ['DENIED'], namespace: ['a', 'b', 'c'], port: [80], protocol: ['http'] },
  );
  t.throws(
    () => parseFlowFilter([['verdict', 'DROPPED']]),
    /verdict: "DROPPED" is not one of ALLOWED, DENIED, ERROR/,
  );
  t.throws(() => parseFlowFilter([['port', '70000']]), /port: "70000" is not a port number/);
  t.throws(() => parseFlowFilter([['type', 'flow']]), /type: "flow"/);
  t.throws(
    () => parseFlowFilter([['namespace', Array.from({ length: 65 }, (_, i) => `n${i}`).join(',')]]),
    /more than 64 values/,
  );
  t.throws(() => parseFlowFilter([['pod', 'x'.repeat(600)]]), /longer than 512/);
  const filter: FlowFilter = {
    verdict: ['DENIED'],
    pod: ['shop/client-0'],
    port: [8080, 9090],
    type: ['request'],
  };
  t.same(parseFlowFilter(flowFilterQuery(filter).entries()), filter, 'the query form round-trips');
});

t.test('flow lines are checked field by field', async (t) => {
  t.match(parseFlowLine(JSON.stringify(base)), base);
  t.throws(() => parseFlowLine('{'), /not JSON/);
  t.throws(() => parseFlowLine('[]'), /not a JSON object/);
  t.throws(() => parseFlowLine(JSON.stringify({ ...base, verdict: 'OK' })), /verdict: want ALLOWED/);
  t.throws(() => parseFlowLine(JSON.stringify({ ...base, source: { ip: 1 } })), /source/);
  t.throws(() => parseFlowLine(JSON.stringify({ ...base, reporter: { kind: 'x' } })), /reporter/);
  t.throws(() => parseFlowLine(JSON.stringify({ ...base, http: { method: 'GET' } })), /http/);
  t.match(parseFlowLine(JSON.stringify({ type: 'lost', reporter: base.reporter, count: 3 })), { count: 3 });
});
