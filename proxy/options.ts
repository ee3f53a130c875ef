// What `weft waypoint run` passes to the waypoint (proxy/main.ts `startWaypoint`), and what it gets back.
import type { HostPort } from '../core/address.js';
import type { ConfigStore } from '../core/store.js';
import type { CaClient, GrpcCaClientOptions } from '../core/identity/ca-client.js';
import type { FlowRing } from '../core/flows/ring.js';
import type { DrainReport, DrainTimings } from './server/drain.js';

/** Istio's waypoint ports: HBONE in, and the usual admin/metrics/readiness endpoints. */
export const WAYPOINT_DEFAULT_PORTS = Object.freeze({
  hbone: 15008,
  admin: 15000,
  metrics: 15020,
  readiness: 15021,
});

export interface WaypointOptions {
  /** The waypoint's Gateway (class istio-waypoint): its name and namespace. */
  readonly name: string;
  readonly namespace: string;
  /** The service account the waypoint runs as; its SPIFFE identity is ns/<namespace>/sa/<serviceAccount>. */
  readonly serviceAccount: string;
  /** The node the waypoint pod runs on (the CA's node authorizer checks the pod is there). */
  readonly nodeName: string;
  readonly trustDomain: string;
  /** `file:DIR` (the same folder the agents read), `kubernetes` or `kubernetes:KUBECONFIG`. */
  readonly configSource: string;
  readonly ca: GrpcCaClientOptions;
  readonly certTtlSeconds: number;
  readonly hboneListen: HostPort;
  /** null disables a listener. */
  readonly adminListen: HostPort | null;
  readonly metricsListen: HostPort | null;
  readonly readinessListen: HostPort | null;
  /** OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); undefined: tracing off. */
  readonly otlpEndpoint: string | undefined;
  /** Tests may pass their own CA client; by default a GrpcCaClient from `ca`. */
  readonly caClient?: CaClient;
  /** This replica's pod name, naming it in flow events (default: the host name). */
  readonly podName?: string;
  /** The admin endpoints also on this Unix socket (the lab's: reachable from outside the pod's netns). */
  readonly adminSocket?: string;
  /** Flow events kept for `/flows` (default DEFAULT_FLOW_RING_CAPACITY). */
  readonly flowBuffer?: number;
  /** How a drain ends the open connections (proxy/server/drain.ts); defaults otherwise. */
  readonly drain?: Partial<DrainTimings>;
  /**
   * Listen on the fixed ports with SO_REUSEPORT when the native addon loads, so a successor process can
   * start beside this one (default true; proxy/listeners.ts).
   */
  readonly sharePorts?: boolean;
  /**
   * Write HTTPRoute status (Accepted/ResolvedRefs) to the API server: needs a `kubernetes` config
   * source. The waypoint's replicas elect one writer through a Lease; `identity` is this replica's.
   */
  readonly routeStatus?:
    | {
        readonly identity: string;
        /** Lease timings (tests shorten them); client-go's defaults otherwise. */
        readonly leaseDurationMs?: number;
        readonly renewDeadlineMs?: number;
        readonly retryPeriodMs?: number;
      }
    | undefined;
}

export interface WaypointHandle {
  readonly hboneAddress: HostPort;
  readonly adminAddress: HostPort | null;
  readonly metricsAddress: HostPort | null;
  readonly readinessAddress: HostPort | null;
  readonly store: ConfigStore;
  readonly flows: FlowRing;
  /**
   * Stops accepting, asks peers to move on, ends the connections inside the tunnels as each protocol
   * allows and lets requests in flight finish; at the deadline resets what is left (proxy/server/drain.ts).
   * Readiness answers 503 from the start. Idempotent: every call gets the one drain's report.
   */
  drain(reason: string): Promise<DrainReport>;
  /** Closes everything at once (after `drain`, nothing is left to cut). */
  close(): Promise<void>;
}
