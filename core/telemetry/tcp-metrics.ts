// Istio's standard TCP metrics, same names and labels, so existing dashboards work unchanged.
import { Counter, Registry } from 'prom-client';

export const TRAFFIC_LABEL_NAMES = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
  'response_flags',
  'connection_security_policy',
] as const;

export type TrafficLabelName = (typeof TRAFFIC_LABEL_NAMES)[number];
export type TrafficLabels = Record<TrafficLabelName, string>;

/** Response flags ztunnel uses; `-` is success. */
export type ResponseFlag =
  | '-'
  | 'DENY'
  | 'CONNECT'
  | 'TLS_FAILURE'
  | 'H2_HANDSHAKE_FAILURE'
  | 'NETWORK_POLICY'
  | 'IDENTITY_ERROR'
  // A connection bound of the agent was reached (agent/connection-budget.ts).
  | 'OVERLOAD';

export class TcpMetrics {
  readonly opened: Counter<TrafficLabelName>;
  readonly closed: Counter<TrafficLabelName>;
  readonly sentBytes: Counter<TrafficLabelName>;
  readonly receivedBytes: Counter<TrafficLabelName>;
  readonly failed: Counter<TrafficLabelName>;

  constructor(registry: Registry) {
    const make = (name: string, help: string) =>
      new Counter({ name, help, labelNames: TRAFFIC_LABEL_NAMES, registers: [registry] });
    this.opened = make('istio_tcp_connections_opened_total', 'Total TCP connections opened');
    this.closed = make('istio_tcp_connections_closed_total', 'Total TCP connections closed');
    this.sentBytes = make(
      'istio_tcp_sent_bytes_total',
      'Bytes sent during response handling on a TCP connection',
    );
    this.receivedBytes = make(
      'istio_tcp_received_bytes_total',
      'Bytes received during request handling on a TCP connection',
    );
    this.failed = make('istio_tcp_connections_failed_total', 'Total TCP connections that failed (unstable)');
  }
}
