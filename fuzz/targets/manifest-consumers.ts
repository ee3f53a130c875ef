// What reads converted records, run over a store holding the corpus's objects plus the fuzzed ones: a
// record that converts must be usable by every consumer (routing table, waypoint L7 policy, agent L4
// policy, per-request route plans). Conversion exists so that nothing downstream re-validates; a
// consumer throwing on a converted record is a conversion gap.
import { keyOf, type ConfigRecord } from '../../core/model/index.js';
import { ConfigStore } from '../../core/store.js';
import { parseSpiffeId } from '../../core/spiffe.js';
import { PolicyAuthorizer } from '../../agent/authorizer.js';
import { compileRoutingTable, planRequest } from '../../proxy/routing/index.js';
import { evaluateRequest, WaypointPolicyCache } from '../../proxy/authz/index.js';

const CLIENT = parseSpiffeId('spiffe://cluster.local/ns/bookinfo/sa/client');

/** Applies `world`, then `records` as a second batch (as an edit arrives), and runs every consumer. */
export function exerciseConsumers(world: readonly ConfigRecord[], records: readonly ConfigRecord[]): void {
  const store = new ConfigStore();
  store.apply({ upserts: [...world], deletes: [], rejections: [] });
  store.apply({ upserts: [...records], deletes: [], rejections: [] });
  const keys = [...world, ...records].map(keyOf);
  const namespaces = [...new Set(keys.map((k) => (k.kind === 'Namespace' ? k.name : k.namespace)))];
  const services = keys.flatMap((k) => (k.kind === 'Service' ? [store.service(k.namespace, k.name)] : []));
  const authorizer = new PolicyAuthorizer(store);
  for (const namespace of namespaces) {
    for (const w of store.workloadsInNamespace(namespace))
      authorizer.authorize(w, {
        srcIp: '10.1.0.1',
        srcIdentity: CLIENT,
        dstIp: w.podIps[0] ?? '10.1.0.2',
        dstPort: 9080,
      });
  }
  for (const namespace of namespaces) {
    const waypoint = { namespace, name: 'waypoint' };
    const table = compileRoutingTable(store, waypoint);
    const policies = new WaypointPolicyCache(store);
    for (const service of services) {
      if (service === undefined) continue;
      const port = service.ports[0]?.port ?? 80;
      const vip = service.clusterIps[0];
      if (vip !== undefined)
        planRequest(table, {
          dialled: { ip: vip, port },
          clientNamespace: namespace,
          method: 'GET',
          path: '/reviews/1',
          query: '?q=1',
          headers: { host: service.name, 'x-canary': 'true', origin: 'https://www.foo.com' },
        });
      const compiled = policies.get({
        waypoint,
        service: { namespace: service.namespace, name: service.name },
      });
      evaluateRequest(compiled, {
        srcIp: '10.1.0.1',
        srcIdentity: CLIENT,
        dstIp: vip ?? '10.96.0.1',
        dstPort: port,
        method: 'POST',
        path: '/api/x',
        query: '',
        host: service.name,
        rawHeaders: ['host', service.name, 'x-token', 'abc'],
        sni: undefined,
      });
    }
  }
}
