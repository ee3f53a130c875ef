// v1 Service -> Service record.
import { canonicalIp, SERVICE_TYPES, type Service, type ServicePort } from '../model/index.js';
import {
  fail,
  optionalEnum,
  optionalList,
  optionalObject,
  optionalString,
  requireObject,
  requirePort,
  shown,
  stringList,
  stringMap,
  type JsonObject,
} from './fields.js';
import type { ObjectMeta } from './meta.js';
import { readPortName, readProtocol } from './ports.js';

const HEADLESS_CLUSTER_IP = 'None';

export function convertService(manifest: JsonObject, meta: ObjectMeta): Service {
  const spec = optionalObject(manifest.spec, 'spec') ?? {};
  const type = optionalEnum(spec.type, 'spec.type', SERVICE_TYPES) ?? 'ClusterIP';
  const { clusterIps, headless } = readClusterIps(spec);
  const ports = readServicePorts(spec);
  const selector =
    spec.selector === undefined || spec.selector === null
      ? undefined
      : stringMap(spec.selector, 'spec.selector');
  return {
    kind: 'Service',
    name: meta.name,
    namespace: meta.namespace,
    labels: meta.labels,
    type,
    clusterIps: type === 'ExternalName' ? [] : clusterIps,
    headless,
    ports,
    // Kubernetes ignores an empty selector the same way as a missing one: no automatic endpoints.
    selector: selector === undefined || Object.keys(selector).length === 0 ? undefined : selector,
  };
}

function readClusterIps(spec: JsonObject): { clusterIps: readonly string[]; headless: boolean } {
  const listed = stringList(spec.clusterIPs, 'spec.clusterIPs');
  const single = optionalString(spec.clusterIP, 'spec.clusterIP');
  const texts = listed.length > 0 ? listed : single === undefined ? [] : [single];
  const fieldOf = (i: number): string => (listed.length > 0 ? `spec.clusterIPs[${i}]` : 'spec.clusterIP');
  if (texts[0] === HEADLESS_CLUSTER_IP) {
    if (texts.length > 1) fail(fieldOf(1), `must be absent when the Service is headless ("None")`);
    return { clusterIps: [], headless: true };
  }
  const clusterIps = texts.map((text, i) => {
    const ip = canonicalIp(text);
    if (ip === undefined) fail(fieldOf(i), `must be an IP address or "None", got ${shown(text)}`);
    return ip;
  });
  if (single !== undefined && listed.length > 0 && canonicalIp(single) !== clusterIps[0]) {
    fail('spec.clusterIP', `must equal spec.clusterIPs[0], got ${shown(single)}`);
  }
  return { clusterIps, headless: false };
}

function readServicePorts(spec: JsonObject): readonly ServicePort[] {
  const list = optionalList(spec.ports, 'spec.ports') ?? [];
  const ports = list.map((entry, i): ServicePort => {
    const field = `spec.ports[${i}]`;
    const port = requireObject(entry, field);
    const number = requirePort(port.port, `${field}.port`);
    return {
      name: readPortName(port.name, `${field}.name`),
      port: number,
      targetPort: readTargetPort(port.targetPort, `${field}.targetPort`) ?? number,
      protocol: readProtocol(port.protocol, `${field}.protocol`),
      appProtocol: optionalString(port.appProtocol, `${field}.appProtocol`),
    };
  });
  // Kubernetes requires every port of a multi-port Service to be named, and names to be unique.
  const seen = new Set<string>();
  ports.forEach((port, i) => {
    if (ports.length > 1 && port.name === undefined)
      fail(`spec.ports[${i}].name`, 'is required when a Service has several ports');
    if (port.name !== undefined && seen.has(port.name))
      fail(`spec.ports[${i}].name`, `must be unique, got ${shown(port.name)} twice`);
    if (port.name !== undefined) seen.add(port.name);
  });
  return ports;
}

function readTargetPort(value: unknown, field: string): number | string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    // kubectl accepts a numeric string here and means the number.
    if (/^[0-9]+$/.test(value)) return requirePort(Number(value), field);
    return readPortName(value, field);
  }
  return requirePort(value, field);
}
