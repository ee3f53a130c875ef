// Small builders for the manifests the demo, the bench and the end-to-end tests write: one place for
// the shape of a lab Pod (fixed IP and node, Running) and a Namespace, instead of YAML copied around.

/** A Namespace; `ambient: true` enrols it in the mesh. */
export function namespaceManifest(name: string, options: { ambient?: boolean } = {}): string {
  const labels = options.ambient ? ', labels: { istio.io/dataplane-mode: ambient }' : '';
  return `apiVersion: v1
kind: Namespace
metadata: { name: ${name}${labels} }
`;
}

export interface LabPodSpec {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly node: string;
  readonly ip: string;
  /** Defaults to `{ app: <serviceAccount> }`. */
  readonly app?: string;
}

/** A running Pod with a fixed IP on a fixed node, as the data plane sees it (no command). */
export function podManifest(p: LabPodSpec): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${p.name}, namespace: ${p.namespace}, uid: 0b7f-${p.namespace}-${p.name}, labels: { app: ${p.app ?? p.serviceAccount} } }
spec: { serviceAccountName: ${p.serviceAccount}, nodeName: ${p.node} }
status: { phase: Running, podIP: ${p.ip} }
`;
}

/** Documents joined into one multi-document YAML file. */
export function manifestFile(...docs: string[]): string {
  return docs.join('---\n');
}
