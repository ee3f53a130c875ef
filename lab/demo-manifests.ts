// The demo's cluster in manifests: an enrolled namespace with pods on two nodes, and one that is not.

export const DEMO_MANIFESTS = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, uid: 0b7f0c52-0001-4000-8000-000000000001, labels: { app: web } }
spec: { serviceAccountName: web, nodeName: node-1 }
status: { phase: Running, podIP: 10.244.1.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: checkout-0, namespace: shop, uid: 0b7f0c52-0001-4000-8000-000000000002, labels: { app: checkout } }
spec: { serviceAccountName: checkout, nodeName: node-1 }
status: { phase: Running, podIP: 10.244.1.11 }
---
apiVersion: v1
kind: Pod
metadata: { name: db-0, namespace: shop, uid: 0b7f0c52-0001-4000-8000-000000000003, labels: { app: db } }
spec: { serviceAccountName: db, nodeName: node-2 }
status: { phase: Running, podIP: 10.244.2.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: batch-0, namespace: legacy, uid: 0b7f0c52-0001-4000-8000-000000000004 }
spec: { serviceAccountName: batch, nodeName: node-1 }
status: { phase: Running, podIP: 10.244.1.12 }
`;

/** Only the enrolled pods of node-1 get identities; legacy's batch pod is not enrolled. */
export const DEMO_EXPECTED_NODE1_IDENTITIES = [
  'spiffe://cluster.local/ns/shop/sa/web',
  'spiffe://cluster.local/ns/shop/sa/checkout',
];

export const DEMO_REFUSED_IDENTITY = 'spiffe://cluster.local/ns/shop/sa/db';
