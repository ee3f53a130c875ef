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
  /** What `weft lab` runs in the pod (`weft …` is this build); none: the pod is an address only. */
  readonly command?: readonly string[];
  /** TCP ports the command listens on: `weft lab` reports the pod ready once they accept. */
  readonly containerPorts?: readonly number[];
}

/** A running Pod with a fixed IP on a fixed node, as the data plane sees it; a command only if given. */
export function podManifest(p: LabPodSpec): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${p.name}, namespace: ${p.namespace}, uid: 0b7f-${p.namespace}-${p.name}, labels: { app: ${p.app ?? p.serviceAccount} } }
spec: { serviceAccountName: ${p.serviceAccount}, nodeName: ${p.node}${containers(p)} }
status: { phase: Running, podIP: ${p.ip} }
`;
}

/** `, containers: [...]` in flow style (JSON strings are YAML flow scalars), or nothing. */
function containers(p: LabPodSpec): string {
  if (p.command === undefined && p.containerPorts === undefined) return '';
  const command = p.command === undefined ? '' : `, command: ${JSON.stringify(p.command)}`;
  const ports =
    p.containerPorts === undefined
      ? ''
      : `, ports: [${p.containerPorts.map((port) => `{ containerPort: ${port} }`).join(', ')}]`;
  return `, containers: [{ name: main${command}${ports} }]`;
}

/** Documents joined into one multi-document YAML file. */
export function manifestFile(...docs: string[]): string {
  return docs.join('---\n');
}
