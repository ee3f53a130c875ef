// What the agent reads from the API server: every pod, not only its node's (destinations are found by
// IP anywhere in the cluster: enrolled or not, which identity); HTTPRoutes are the waypoint's business.
import type { ConfigKind } from '../core/model/index.js';

export const AGENT_KINDS: readonly ConfigKind[] = [
  'Namespace',
  'Pod',
  'Service',
  'EndpointSlice',
  'Gateway',
  'AuthorizationPolicy',
  'PeerAuthentication',
];
