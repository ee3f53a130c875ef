// Which workloads this agent serves: enrolled, live pods scheduled on its own node. The one definition,
// used by inbound (may we deliver to it?), outbound (whose connection is this?) and certificates.
import type { ConfigStore } from '../core/store.js';
import { isAmbientEnrolled, isTerminated, type Workload } from '../core/model/workload.js';
import { formatSpiffeId } from '../core/spiffe.js';
import { isLoopback } from './socket.js';

export class LocalWorkloads {
  constructor(
    readonly store: ConfigStore,
    readonly nodeName: string,
    readonly trustDomain: string,
  ) {}

  /** The enrolled, live workload on this node that owns `ip`, or undefined. O(1). */
  owning(ip: string): Workload | undefined {
    if (isLoopback(ip)) return undefined;
    const w = this.store.workloadByIp(ip);
    if (!w || w.nodeName !== this.nodeName || isTerminated(w)) return undefined;
    return isAmbientEnrolled(this.store.namespace(w.namespace), w) ? w : undefined;
  }

  /** True when `w` is enrolled in the mesh (on any node): it speaks HBONE. */
  isMeshWorkload(w: Workload): boolean {
    return !isTerminated(w) && isAmbientEnrolled(this.store.namespace(w.namespace), w);
  }

  spiffeIdOf(w: Workload): string {
    return formatSpiffeId({
      trustDomain: this.trustDomain,
      namespace: w.namespace,
      serviceAccount: w.serviceAccount,
    });
  }
}
