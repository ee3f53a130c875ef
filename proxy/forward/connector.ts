// Byte streams from the waypoint to one endpoint: an HBONE tunnel (HTTP/2 CONNECT over mTLS with the
// waypoint's own certificate, pooled by core/hbone/client-pool.ts) when the endpoint is in the mesh,
// a plain TCP connection when it is not (as the node agent passes such traffic through). A mesh
// endpoint is never reached in plaintext: if the tunnel fails, the request fails.
import type { Duplex } from 'node:stream';
import type { Workload } from '../../core/model/workload.js';
import { HBONE_PORT, CONNECT_TIMEOUT_MS } from '../../core/hbone/settings.js';
import { formatHboneAuthority } from '../../core/hbone/authority.js';
import { HEADER_TRACEPARENT } from '../../core/hbone/headers.js';
import type { HboneClientPool } from '../../core/hbone/client-pool.js';
import { Priority, type CertificateManager } from '../../core/identity/manager.js';
import { dialTcp } from '../../core/tcp.js';

/** One chosen destination: a pod address and its target port. */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
  /** The pod, when the address is one; undefined for endpoints outside the store's pods. */
  readonly workload: Workload | undefined;
}

export interface ConnectorInputs {
  readonly pool: HboneClientPool;
  readonly certificates: CertificateManager;
  /** The waypoint's own SPIFFE ID: the identity it presents upstream. */
  readonly selfId: string;
  readonly spiffeIdOf: (w: Workload) => string;
  /** Whether a pod speaks HBONE (enrolled and live). */
  readonly isMeshWorkload: (w: Workload) => boolean;
}

export class UpstreamConnector {
  readonly #in: ConnectorInputs;

  constructor(inputs: ConnectorInputs) {
    this.#in = inputs;
  }

  /** True when `ep` is reached through a tunnel (so bytes to it are encrypted). */
  tunnelled(ep: Endpoint): boolean {
    return ep.workload !== undefined && this.#in.isMeshWorkload(ep.workload);
  }

  /** A connected byte stream to `ep`; rejects with the peer and cause when it cannot be had. */
  async open(ep: Endpoint, traceparent?: string): Promise<Duplex> {
    if (!this.tunnelled(ep)) return dialTcp(ep.ip, ep.port, CONNECT_TIMEOUT_MS);
    const { pool, certificates, selfId, spiffeIdOf } = this.#in;
    const cert = await certificates.fetch(selfId, Priority.RealTime);
    return pool.connect(
      { srcIdentity: selfId, dstIdentity: spiffeIdOf(ep.workload!), dstIp: ep.ip, dstPort: HBONE_PORT },
      cert,
      formatHboneAuthority(ep.ip, ep.port),
      traceparent === undefined ? {} : { [HEADER_TRACEPARENT]: traceparent },
    );
  }
}
