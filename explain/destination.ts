// What the client addresses: the IP and port it connects to (a pod IP, a Service's cluster IP, or any
// address), the way the data plane receives it (the original destination of a captured socket).
import { serviceFqdn } from '../core/model/service.js';
import type { ConfigStore } from '../core/store.js';
import type { ExplainedDestination } from './explanation.js';
import { ExplainQueryError, queryIp, type ExplainDestination } from './query.js';

export interface ResolvedDestination {
  readonly view: ExplainedDestination;
  readonly ip: string;
  readonly port: number;
}

export function resolveDestination(
  store: ConfigStore,
  destination: ExplainDestination,
  port: number,
): ResolvedDestination {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new ExplainQueryError(`port ${port} is not a port number (1-65535)`);
  switch (destination.kind) {
    case 'workload': {
      const name = `${destination.namespace}/${destination.name}`;
      const w = store.workload(destination.namespace, destination.name);
      if (w === undefined) throw new ExplainQueryError(`pod ${name} not found`);
      const ip = w.podIps[0];
      if (ip === undefined) throw new ExplainQueryError(`pod ${name} has no IP address yet`);
      return { view: { ip, port, namespace: w.namespace, pod: w.name }, ip, port };
    }
    case 'service': {
      const name = `${destination.namespace}/${destination.name}`;
      const service = store.service(destination.namespace, destination.name);
      if (service === undefined) throw new ExplainQueryError(`Service ${name} not found`);
      const ip = service.clusterIps[0];
      if (ip === undefined)
        throw new ExplainQueryError(
          `Service ${name} has no cluster IP (headless or ExternalName): explain a flow to one of its pods`,
        );
      return { view: { ip, port, service: serviceView(store, service) }, ip, port };
    }
    case 'address': {
      const ip = queryIp(destination.ip, 'destination IP');
      const service = store.serviceByVip(ip);
      if (service !== undefined)
        return { view: { ip, port, service: serviceView(store, service) }, ip, port };
      const w = store.workloadByIp(ip);
      return { view: { ip, port, ...(w && { namespace: w.namespace, pod: w.name }) }, ip, port };
    }
  }
}

function serviceView(
  store: ConfigStore,
  service: { readonly namespace: string; readonly name: string },
): NonNullable<ExplainedDestination['service']> {
  return {
    namespace: service.namespace,
    name: service.name,
    host: serviceFqdn(service, store.clusterDomain),
  };
}
