// security.istio.io/v1 (and v1beta1) PeerAuthentication -> PeerAuthentication record (authz.md §8).
import { MTLS_MODES, type MtlsMode, type PeerAuthentication, type PortMtls } from '../model/index.js';
import {
  fail,
  optionalEnum,
  optionalObject,
  requireObject,
  shown,
  stringMap,
  type JsonObject,
} from './fields.js';
import type { ObjectMeta } from './meta.js';

export function convertPeerAuthentication(manifest: JsonObject, meta: ObjectMeta): PeerAuthentication {
  const spec = optionalObject(manifest.spec, 'spec') ?? {};
  const selectorObject = optionalObject(spec.selector, 'spec.selector');
  const matchLabels =
    selectorObject === undefined ? {} : stringMap(selectorObject.matchLabels, 'spec.selector.matchLabels');
  const selector = Object.keys(matchLabels).length > 0 ? matchLabels : undefined;
  const mtls = optionalObject(spec.mtls, 'spec.mtls') ?? {};
  const portLevelMtls = readPortLevelMtls(spec.portLevelMtls, 'spec.portLevelMtls');
  if (portLevelMtls.length > 0 && selector === undefined) {
    fail('spec.portLevelMtls', 'is only allowed together with a non-empty selector');
  }
  return {
    kind: 'PeerAuthentication',
    name: meta.name,
    namespace: meta.namespace,
    labels: meta.labels,
    createdAtMs: meta.createdAtMs,
    selector,
    mode: readMode(mtls.mode, 'spec.mtls.mode'),
    portLevelMtls,
  };
}

function readMode(value: unknown, field: string): MtlsMode {
  return optionalEnum(value, field, MTLS_MODES) ?? 'UNSET';
}

/** `{ "8080": { mode: STRICT } }`: keys are workload ports, 1-65535. */
function readPortLevelMtls(value: unknown, field: string): readonly PortMtls[] {
  const map = optionalObject(value, field);
  if (map === undefined) return [];
  const entries = Object.entries(map).map(([portText, entry]): PortMtls => {
    const entryField = `${field}[${JSON.stringify(portText)}]`;
    const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : 0;
    if (port < 1 || port > 65535)
      fail(entryField, `key must be a port number 1-65535, got ${shown(portText)}`);
    const settings: JsonObject = requireObject(entry, entryField);
    return { port, mode: readMode(settings.mode, `${entryField}.mode`) };
  });
  return entries.sort((a, b) => a.port - b.port);
}
