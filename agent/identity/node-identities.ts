// Which identities this node's agent keeps certificates for: those of its enrolled, live pods.
import { formatSpiffeId } from '../../core/spiffe.js';
import { isAmbientEnrolled, isTerminated, type Workload } from '../../core/model/workload.js';
import type { Namespace } from '../../core/model/namespace.js';

/** The part of the config store this needs: pods on a node, and namespaces for enrolment. */
export interface NodeWorkloads {
  workloadsOnNode(nodeName: string): Iterable<Workload>;
  namespace(name: string): Namespace | undefined;
}

/** SPIFFE IDs of the enrolled, non-terminated pods scheduled on `nodeName`. O(pods on the node). */
export function identitiesForNode(store: NodeWorkloads, nodeName: string, trustDomain: string): Set<string> {
  const ids = new Set<string>();
  for (const w of store.workloadsOnNode(nodeName)) {
    if (isTerminated(w) || !isAmbientEnrolled(store.namespace(w.namespace), w)) continue;
    ids.add(formatSpiffeId({ trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount }));
  }
  return ids;
}
