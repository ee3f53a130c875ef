// Service records, EndpointSlice records, and the resolved endpoints a Service's VIP balances over.
import type { Labels } from './labels.js';
import type { PortProtocol } from './workload.js';

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export const SERVICE_TYPES: readonly ServiceType[] = [
  'ClusterIP',
  'NodePort',
  'LoadBalancer',
  'ExternalName',
];

export interface ServicePort {
  readonly name: string | undefined;
  readonly port: number;
  /** A container port number, or the name of a container port; defaults to `port`. */
  readonly targetPort: number | string;
  readonly protocol: PortProtocol;
  readonly appProtocol: string | undefined;
}

export interface Service {
  readonly kind: 'Service';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Labels;
  readonly type: ServiceType;
  /** spec.clusterIPs (or spec.clusterIP), canonical text; empty for headless and ExternalName Services. */
  readonly clusterIps: readonly string[];
  /** spec.clusterIP "None". */
  readonly headless: boolean;
  readonly ports: readonly ServicePort[];
  /** spec.selector; undefined when absent, in which case endpoints come only from EndpointSlices. */
  readonly selector: Labels | undefined;
}

export type EndpointAddressType = 'IPv4' | 'IPv6' | 'FQDN';
export const ENDPOINT_ADDRESS_TYPES: readonly EndpointAddressType[] = ['IPv4', 'IPv6', 'FQDN'];

export interface EndpointTargetRef {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
}

export interface SliceEndpoint {
  readonly addresses: readonly string[];
  /** conditions.ready; Kubernetes says an unknown state is to be read as ready. */
  readonly ready: boolean;
  readonly nodeName: string | undefined;
  readonly targetRef: EndpointTargetRef | undefined;
}

export interface SlicePort {
  /** Matches the Service port of the same name (both undefined for a single unnamed port). */
  readonly name: string | undefined;
  readonly port: number;
  readonly protocol: PortProtocol;
  readonly appProtocol: string | undefined;
}

/** discovery.k8s.io/v1 EndpointSlice. */
export interface EndpointSlice {
  readonly kind: 'EndpointSlice';
  readonly name: string;
  readonly namespace: string;
  readonly labels: Labels;
  /** The label `kubernetes.io/service-name`: which Service this slice belongs to. */
  readonly serviceName: string;
  readonly addressType: EndpointAddressType;
  readonly endpoints: readonly SliceEndpoint[];
  readonly ports: readonly SlicePort[];
}

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** One ready address behind a Service, with the port it serves for each Service port. */
export interface ServiceEndpoint {
  readonly address: string;
  readonly nodeName: string | undefined;
  /** Service port number -> target port on this address; a Service port missing here is not served. */
  readonly targetPorts: Readonly<Record<number, number>>;
}

/** The Service's cluster DNS name, `<name>.<namespace>.svc.<clusterDomain>` (Istio's destination_service). */
export function serviceFqdn(
  service: { readonly name: string; readonly namespace: string },
  clusterDomain: string,
): string {
  return `${service.name}.${service.namespace}.svc.${clusterDomain}`;
}
