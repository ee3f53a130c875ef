// HTTPRoute status from a waypoint: written by the leader of its replicas (a Lease per waypoint), from
// the statuses of the compiled routing table. Its own module: only a waypoint configured to write
// status (a `kubernetes` config source) loads it and the Kubernetes client.
import type { ConfigStore } from '../../core/store.js';
import { kubernetesCredentialsOf } from '../../core/sources/index.js';
import { loadKubeConfig } from '../../core/kubernetes/config.js';
import { LeaderElector } from '../../core/kubernetes/leader-election.js';
import { WeftError } from '../../core/errors.js';
import { componentLogger } from '../../core/log.js';
import type { RoutingTable } from '../routing/index.js';
import type { WaypointOptions } from '../options.js';
import { RouteStatusWriter, kubernetesRouteApi } from './route-status-writer.js';

/**
 * HTTPRoute status written by the leader of this waypoint's replicas (Lease `weft-waypoint-NAME` in the
 * waypoint's namespace). A new leader checks every route once.
 */
export function startRouteStatus(
  options: WaypointOptions,
  store: ConfigStore,
  statuses: () => RoutingTable['statuses'],
): { stop(): Promise<void> } {
  const credentials = kubernetesCredentialsOf(options.configSource);
  if (credentials === undefined || options.routeStatus === undefined)
    throw new WeftError(
      'ERR_CONFIG_INVALID',
      `writing HTTPRoute status needs a kubernetes config source, not ${options.configSource}`,
      { field: 'route-status' },
    );
  const kubeConfig = loadKubeConfig(credentials.path, `waypoint ${options.namespace}/${options.name}`);
  const elector = new LeaderElector({
    kubeConfig,
    namespace: options.namespace,
    name: `weft-waypoint-${options.name}`,
    ...options.routeStatus,
  });
  const writer = new RouteStatusWriter({
    store,
    statuses,
    api: kubernetesRouteApi(kubeConfig),
    isLeader: () => elector.isLeader,
    log: componentLogger('waypoint.route-status'),
  });
  elector.on('leading', () => {
    writer.reset();
    writer.sync();
  });
  elector.start();
  return {
    async stop() {
      await writer.close();
      await elector.stop();
    },
  };
}
