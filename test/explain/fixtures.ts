// A small mesh as manifests for the explain tests: two nodes; `shop` enrolled, its Service `web` bound to
// waypoint `shop/waypoint` (an HTTPRoute on /api) and `cart` with two pods on two nodes and no waypoint;
// `data` enrolled without a waypoint; `legacy` outside the mesh. Policies are added per test.
import YAML from 'yaml';
import { convertManifest, formatRejection } from '../../core/convert/index.js';
import type { ConfigRecord } from '../../core/model/index.js';
import { ConfigStore } from '../../core/store.js';

export const BASE = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: data, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: shop, labels: { app: client } }
spec: { serviceAccountName: client, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.11 }
---
apiVersion: v1
kind: Pod
metadata: { name: web-0, namespace: shop, labels: { app: web } }
spec: { serviceAccountName: web, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: cart-0, namespace: shop, labels: { app: cart, version: v1 } }
spec: { serviceAccountName: cart, nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.20 }
---
apiVersion: v1
kind: Pod
metadata: { name: cart-1, namespace: shop, labels: { app: cart, version: v2 } }
spec: { serviceAccountName: cart, nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.20 }
---
apiVersion: v1
kind: Pod
metadata:
  name: waypoint-0
  namespace: shop
  labels: { gateway.networking.k8s.io/gateway-name: waypoint, istio.io/dataplane-mode: none }
spec: { serviceAccountName: waypoint, nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.12 }
---
apiVersion: v1
kind: Pod
metadata: { name: db-0, namespace: data, labels: { app: db } }
spec: { serviceAccountName: db, nodeName: node-2 }
status: { phase: Running, podIP: 10.1.2.30 }
---
apiVersion: v1
kind: Pod
metadata: { name: old, namespace: legacy, labels: { app: old } }
spec: { nodeName: node-1 }
status: { phase: Running, podIP: 10.1.1.40 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop, labels: { istio.io/use-waypoint: waypoint } }
spec: { clusterIP: 10.96.0.10, selector: { app: web }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
spec: { clusterIP: 10.96.0.11, selector: { app: cart }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: waypoint, namespace: shop }
spec:
  clusterIP: 10.96.0.12
  selector: { gateway.networking.k8s.io/gateway-name: waypoint }
  ports: [{ name: mesh, port: 15008, targetPort: 15008 }]
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: data }
spec: { clusterIP: 10.96.0.30, selector: { app: db }, ports: [{ name: tcp-postgres, port: 5432 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: shop }
spec: { gatewayClassName: istio-waypoint, listeners: [{ name: mesh, port: 15008, protocol: HBONE }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: shop }
spec:
  parentRefs: [{ group: '', kind: Service, name: web, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /api } }]
      backendRefs: [{ name: web, port: 80 }]
`;

export const POD_IPS = {
  client: '10.1.1.11',
  web0: '10.1.1.10',
  cart0: '10.1.1.20',
  cart1: '10.1.2.20',
  waypoint: '10.1.2.12',
  db: '10.1.2.30',
  old: '10.1.1.40',
} as const;

export const CLIENT_ID = 'spiffe://cluster.local/ns/shop/sa/client';
export const WAYPOINT_ID = 'spiffe://cluster.local/ns/shop/sa/waypoint';

/** The records of some YAML documents, through the real converter; any rejection fails the test. */
export function records(...yamls: readonly string[]): ConfigRecord[] {
  const out: ConfigRecord[] = [];
  for (const yaml of yamls)
    for (const doc of YAML.parseAllDocuments(yaml)) {
      const manifest: unknown = doc.toJS();
      if (manifest === null) continue;
      const result = convertManifest(manifest);
      if (result.outcome === 'rejected') throw new Error(formatRejection(result.rejection));
      if (result.outcome !== 'converted') throw new Error(`not converted: ${JSON.stringify(manifest)}`);
      out.push(result.record);
    }
  return out;
}

/** A store holding BASE and the extra documents. */
export function storeOf(...extra: readonly string[]): ConfigStore {
  const store = new ConfigStore();
  store.apply({ upserts: records(BASE, ...extra), deletes: [], rejections: [] });
  return store;
}

/** An AuthorizationPolicy document. */
export function policy(namespace: string, name: string, spec: Record<string, unknown>): string {
  return YAML.stringify({
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace },
    spec,
  });
}

/** A PeerAuthentication document. */
export function peerAuthentication(namespace: string, name: string, spec: Record<string, unknown>): string {
  return YAML.stringify({
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name, namespace },
    spec,
  });
}

/** Attaches an AuthorizationPolicy to Service shop/web (enforced by its waypoint). */
export const WEB_SERVICE_REF = { targetRefs: [{ group: '', kind: 'Service', name: 'web' }] };
