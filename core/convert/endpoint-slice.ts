// discovery.k8s.io/v1 EndpointSlice -> EndpointSlice record.
import {
  canonicalIp,
  ENDPOINT_ADDRESS_TYPES,
  SERVICE_NAME_LABEL,
  type EndpointSlice,
  type EndpointTargetRef,
  type SliceEndpoint,
  type SlicePort,
} from '../model/index.js';
import {
  fail,
  optionalBoolean,
  optionalEnum,
  optionalList,
  optionalObject,
  optionalPort,
  optionalString,
  requireObject,
  requireString,
  shown,
  stringList,
  type JsonObject,
} from './fields.js';
import type { ObjectMeta } from './meta.js';
import { readPortName, readProtocol } from './ports.js';

// Kubernetes' own limits for one slice.
const MAX_ENDPOINTS = 1000;
const MAX_PORTS = 100;

export function convertEndpointSlice(manifest: JsonObject, meta: ObjectMeta): EndpointSlice {
  const serviceName = meta.labels[SERVICE_NAME_LABEL];
  if (serviceName === undefined || serviceName === '') {
    fail(
      `metadata.labels["${SERVICE_NAME_LABEL}"]`,
      'is required: it names the Service this slice belongs to',
    );
  }
  const addressType = optionalEnum(manifest.addressType, 'addressType', ENDPOINT_ADDRESS_TYPES);
  if (addressType === undefined) fail('addressType', 'is required');
  const endpoints = (optionalList(manifest.endpoints, 'endpoints', MAX_ENDPOINTS) ?? []).map((entry, i) =>
    readEndpoint(entry, `endpoints[${i}]`, addressType !== 'FQDN'),
  );
  const ports = (optionalList(manifest.ports, 'ports', MAX_PORTS) ?? []).map((entry, i) =>
    readSlicePort(entry, `ports[${i}]`),
  );
  return {
    kind: 'EndpointSlice',
    name: meta.name,
    namespace: meta.namespace,
    labels: meta.labels,
    serviceName,
    addressType,
    endpoints,
    ports,
  };
}

function readEndpoint(entry: unknown, field: string, addressesAreIps: boolean): SliceEndpoint {
  const endpoint = requireObject(entry, field);
  const addresses = stringList(endpoint.addresses, `${field}.addresses`).map((address, i) => {
    if (!addressesAreIps) return address;
    const ip = canonicalIp(address);
    if (ip === undefined) fail(`${field}.addresses[${i}]`, `must be an IP address, got ${shown(address)}`);
    return ip;
  });
  if (addresses.length === 0) fail(`${field}.addresses`, 'must list at least one address');
  const conditions = optionalObject(endpoint.conditions, `${field}.conditions`) ?? {};
  return {
    addresses,
    // "A nil value should be interpreted as ready" (EndpointConditions.ready).
    ready: optionalBoolean(conditions.ready, `${field}.conditions.ready`) ?? true,
    nodeName: optionalString(endpoint.nodeName, `${field}.nodeName`),
    targetRef: readTargetRef(endpoint.targetRef, `${field}.targetRef`),
  };
}

function readTargetRef(value: unknown, field: string): EndpointTargetRef | undefined {
  const ref = optionalObject(value, field);
  if (ref === undefined) return undefined;
  return {
    kind: requireString(ref.kind, `${field}.kind`),
    namespace: optionalString(ref.namespace, `${field}.namespace`) ?? '',
    name: requireString(ref.name, `${field}.name`),
    uid: optionalString(ref.uid, `${field}.uid`),
  };
}

function readSlicePort(entry: unknown, field: string): SlicePort {
  const port = requireObject(entry, field);
  const number = optionalPort(port.port, `${field}.port`);
  // A nil port means "all ports" in the API; we serve only explicit ports, so require one.
  if (number === undefined) fail(`${field}.port`, 'is required');
  return {
    name: readPortName(port.name, `${field}.name`),
    port: number,
    protocol: readProtocol(port.protocol, `${field}.protocol`),
    appProtocol: optionalString(port.appProtocol, `${field}.appProtocol`),
  };
}
