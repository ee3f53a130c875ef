// The demo's cluster in manifests: an enrolled namespace with pods on two nodes, and one that is not.
import { manifestFile, namespaceManifest, podManifest } from './manifests.js';

export const DEMO_MANIFESTS = manifestFile(
  namespaceManifest('shop', { ambient: true }),
  namespaceManifest('legacy'),
  podManifest({ name: 'web-0', namespace: 'shop', serviceAccount: 'web', node: 'node-1', ip: '10.244.1.10' }),
  podManifest({
    name: 'checkout-0',
    namespace: 'shop',
    serviceAccount: 'checkout',
    node: 'node-1',
    ip: '10.244.1.11',
  }),
  podManifest({ name: 'db-0', namespace: 'shop', serviceAccount: 'db', node: 'node-2', ip: '10.244.2.10' }),
  podManifest({
    name: 'batch-0',
    namespace: 'legacy',
    serviceAccount: 'batch',
    node: 'node-1',
    ip: '10.244.1.12',
  }),
);

/** Only the enrolled pods of node-1 get identities; legacy's batch pod is not enrolled. */
export const DEMO_EXPECTED_NODE1_IDENTITIES = [
  'spiffe://cluster.local/ns/shop/sa/web',
  'spiffe://cluster.local/ns/shop/sa/checkout',
];

export const DEMO_REFUSED_IDENTITY = 'spiffe://cluster.local/ns/shop/sa/db';
