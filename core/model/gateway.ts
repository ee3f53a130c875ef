// Gateway records (gateway.networking.k8s.io/v1). In Weft a Gateway is mostly a waypoint.
import type { Labels } from './labels.js';

/** The GatewayClass of waypoints; Istio's name, so existing manifests work unchanged. */
export const WAYPOINT_GATEWAY_CLASS = 'istio-waypoint';

export interface GatewayListener {
  readonly name: string;
  readonly port: number;
  /** HTTP, HTTPS, TLS, TCP, UDP, HBONE or a domain-prefixed protocol; kept as written. */
  readonly protocol: string;
  readonly hostname: string | undefined;
}

export interface GatewayAddress {
  /** IPAddress (default), Hostname, or a domain-prefixed type. */
  readonly type: string;
  readonly value: string;
}

export interface Gateway {
  readonly kind: 'Gateway';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly gatewayClassName: string;
  readonly listeners: readonly GatewayListener[];
  readonly addresses: readonly GatewayAddress[];
}

export function isWaypoint(gateway: Gateway): boolean {
  return gateway.gatewayClassName === WAYPOINT_GATEWAY_CLASS;
}
