// Who the client of a tunnel is: the address a CONNECT states in `forwarded: for=`, believed only when
// it names a workload whose identity is the one the peer proved. A mesh certificate does not entitle
// its holder to speak for other pods' addresses. Shared by the agent's HBONE server and the waypoint.
import type { Workload } from '../model/workload.js';
import { parseHboneAuthority } from './authority.js';
import { forwardedFor } from './headers.js';

export interface SourceAddress {
  readonly ip: string;
  readonly port: number;
}

export interface WorkloadIdentities {
  workloadByIp(ip: string): Workload | undefined;
}

/**
 * The client address for a stream: `forwarded`'s `for=` when the workload there has identity
 * `peerId` (as `spiffeIdOf` names it), else the socket's own peer address.
 */
export function claimedSource(
  forwarded: string | string[] | undefined,
  peerId: string,
  socketPeer: SourceAddress,
  workloads: WorkloadIdentities,
  spiffeIdOf: (w: Workload) => string,
): SourceAddress {
  const fwd = forwardedFor(typeof forwarded === 'string' ? forwarded : undefined);
  const claimed = fwd === undefined ? undefined : parseHboneAuthority(fwd);
  if (claimed) {
    const w = workloads.workloadByIp(claimed.ip);
    if (w && spiffeIdOf(w) === peerId) return claimed;
  }
  return socketPeer;
}
