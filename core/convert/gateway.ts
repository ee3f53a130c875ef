// gateway.networking.k8s.io/v1 Gateway -> Gateway record.
import { canonicalIp, type Gateway, type GatewayAddress, type GatewayListener } from '../model/index.js';
import {
  fail,
  optionalList,
  optionalString,
  requireObject,
  requirePort,
  requireString,
  shown,
  type JsonObject,
} from './fields.js';
import type { ObjectMeta } from './meta.js';
import { isGatewayHostname, nameProblem } from './names.js';

// Gateway API limits (apis/v1/gateway_types.go).
const MAX_LISTENERS = 64;
const MAX_ADDRESSES = 16;
/** A core protocol name (HTTP, HBONE, …) or a domain-prefixed one (example.com/proto). */
const PROTOCOL_RE =
  /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$/;

export function convertGateway(manifest: JsonObject, meta: ObjectMeta): Gateway {
  const spec = requireObject(manifest.spec, 'spec');
  const gatewayClassName = requireString(spec.gatewayClassName, 'spec.gatewayClassName');
  const listenerList = optionalList(spec.listeners, 'spec.listeners', MAX_LISTENERS) ?? [];
  if (listenerList.length === 0) fail('spec.listeners', 'must have at least one listener');
  const listeners = listenerList.map((entry, i) => readListener(entry, `spec.listeners[${i}]`));
  const names = new Set<string>();
  listeners.forEach((listener, i) => {
    if (names.has(listener.name))
      fail(`spec.listeners[${i}].name`, `must be unique, got ${shown(listener.name)} twice`);
    names.add(listener.name);
  });
  const addresses = (optionalList(spec.addresses, 'spec.addresses', MAX_ADDRESSES) ?? []).map((entry, i) =>
    readAddress(entry, `spec.addresses[${i}]`),
  );
  return {
    kind: 'Gateway',
    name: meta.name,
    namespace: meta.namespace,
    labels: meta.labels,
    gatewayClassName,
    listeners,
    addresses,
  };
}

function readListener(entry: unknown, field: string): GatewayListener {
  const listener = requireObject(entry, field);
  const name = requireString(listener.name, `${field}.name`);
  const nameWrong = nameProblem(name, 'dns1123-subdomain');
  if (nameWrong !== undefined) fail(`${field}.name`, `${nameWrong}, got ${shown(name)}`);
  const protocol = requireString(listener.protocol, `${field}.protocol`);
  if (!PROTOCOL_RE.test(protocol))
    fail(`${field}.protocol`, `must be a protocol name such as HTTP or HBONE, got ${shown(protocol)}`);
  const hostname = optionalString(listener.hostname, `${field}.hostname`);
  if (hostname !== undefined && !isGatewayHostname(hostname)) {
    fail(`${field}.hostname`, `must be a DNS name, optionally starting with "*.", got ${shown(hostname)}`);
  }
  return { name, port: requirePort(listener.port, `${field}.port`), protocol, hostname };
}

function readAddress(entry: unknown, field: string): GatewayAddress {
  const address = requireObject(entry, field);
  const type = optionalString(address.type, `${field}.type`) ?? 'IPAddress';
  const value = requireString(address.value, `${field}.value`);
  if (type === 'IPAddress') {
    const ip = canonicalIp(value);
    if (ip === undefined)
      fail(`${field}.value`, `must be an IP address for type IPAddress, got ${shown(value)}`);
    return { type, value: ip };
  }
  return { type, value };
}
