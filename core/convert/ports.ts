// Port fields shared by Pod, Service and EndpointSlice manifests.
import { PORT_PROTOCOLS, type PortProtocol } from '../model/index.js';
import { fail, optionalEnum, shown } from './fields.js';
import { nameProblem } from './names.js';

export function readProtocol(value: unknown, field: string): PortProtocol {
  return optionalEnum(value, field, PORT_PROTOCOLS) ?? 'TCP';
}

/** An optional port name: a DNS-1123 label, as Kubernetes requires (IANA_SVC_NAME is a subset). */
export function readPortName(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') fail(field, `must be a string, got ${shown(value)}`);
  const wrong = nameProblem(value, 'dns1123-label');
  if (wrong !== undefined) fail(field, `${wrong}, got ${shown(value)}`);
  return value;
}
