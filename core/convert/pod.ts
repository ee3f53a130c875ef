// v1 Pod -> Workload record.
import { canonicalIp, POD_PHASES, type ContainerPort, type PodPhase, type Workload } from '../model/index.js';
import {
  fail,
  optionalBoolean,
  optionalEnum,
  optionalList,
  optionalObject,
  optionalString,
  requireObject,
  requirePort,
  shown,
  type JsonObject,
} from './fields.js';
import type { ObjectMeta } from './meta.js';
import { readPortName, readProtocol } from './ports.js';

export function convertPod(manifest: JsonObject, meta: ObjectMeta): Workload {
  const spec = optionalObject(manifest.spec, 'spec') ?? {};
  const status = optionalObject(manifest.status, 'status') ?? {};
  const podIps = readPodIps(status);
  const phase = optionalEnum(status.phase, 'status.phase', POD_PHASES) ?? defaultPhase(podIps);
  return {
    kind: 'Pod',
    uid: meta.uid ?? `${meta.namespace}/${meta.name}`,
    name: meta.name,
    namespace: meta.namespace,
    serviceAccount: optionalString(spec.serviceAccountName, 'spec.serviceAccountName') ?? 'default',
    labels: meta.labels,
    podIps,
    nodeName: optionalString(spec.nodeName, 'spec.nodeName'),
    hostNetwork: optionalBoolean(spec.hostNetwork, 'spec.hostNetwork') ?? false,
    phase,
    containerPorts: readContainerPorts(spec),
  };
}

/** Hand-written pods have no status.phase: one with an address is running, one without is pending. */
function defaultPhase(podIps: readonly string[]): PodPhase {
  return podIps.length > 0 ? 'Running' : 'Pending';
}

function readPodIps(status: JsonObject): readonly string[] {
  const list = optionalList(status.podIPs, 'status.podIPs');
  const texts: { value: unknown; field: string }[] =
    list !== undefined && list.length > 0
      ? list.map((entry, i) => ({
          value: requireObject(entry, `status.podIPs[${i}]`).ip,
          field: `status.podIPs[${i}].ip`,
        }))
      : status.podIP === undefined || status.podIP === null || status.podIP === ''
        ? []
        : [{ value: status.podIP, field: 'status.podIP' }];
  return texts.map(({ value, field }) => {
    const ip = typeof value === 'string' ? canonicalIp(value) : undefined;
    if (ip === undefined) fail(field, `must be an IP address, got ${shown(value)}`);
    return ip;
  });
}

function readContainerPorts(spec: JsonObject): readonly ContainerPort[] {
  const containers = optionalList(spec.containers, 'spec.containers') ?? [];
  const ports: ContainerPort[] = [];
  containers.forEach((container, c) => {
    const containerField = `spec.containers[${c}]`;
    const declared =
      optionalList(requireObject(container, containerField).ports, `${containerField}.ports`) ?? [];
    declared.forEach((entry, p) => {
      const field = `${containerField}.ports[${p}]`;
      const port = requireObject(entry, field);
      ports.push({
        name: readPortName(port.name, `${field}.name`),
        port: requirePort(port.containerPort, `${field}.containerPort`),
        protocol: readProtocol(port.protocol, `${field}.protocol`),
      });
    });
  });
  return ports;
}
