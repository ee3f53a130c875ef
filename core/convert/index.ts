// Manifest -> typed record, or a Rejection naming the object and the field. The only place in Weft
// that reads raw manifests: everything downstream sees ConfigRecords.
import { componentLogger } from '../log.js';
import type { ConfigKind, ConfigRecord, ObjectKey } from '../model/index.js';
import { convertAuthorizationPolicy } from './authorization-policy.js';
import { convertEndpointSlice } from './endpoint-slice.js';
import { FieldError, isObject, shown, type JsonObject } from './fields.js';
import { convertGateway } from './gateway.js';
import { convertHttpRoute } from './http-route.js';
import { looseIdentity, readMeta, strictIdentity, type ObjectMeta } from './meta.js';
import type { NameFormat } from './names.js';
import { convertNamespace } from './namespace.js';
import { convertPeerAuthentication } from './peer-authentication.js';
import { convertPod } from './pod.js';
import type { Rejection } from './rejection.js';
import { convertService } from './service.js';

export { formatRejection, rejectionKey, type Rejection } from './rejection.js';
export { parseGatewayDuration } from './duration.js';

const log = componentLogger('core.convert');

/** Where a manifest came from, copied into its rejection. */
export interface ManifestOrigin {
  readonly file?: string;
  readonly document?: number;
  readonly item?: number;
}

export type ConversionResult =
  | { readonly outcome: 'converted'; readonly record: ConfigRecord }
  | {
      readonly outcome: 'rejected';
      readonly rejection: Rejection;
      /**
       * The object the manifest defines, when its identity (kind, apiVersion group, metadata.name and
       * metadata.namespace) is valid; undefined when it is not. The rejection still names the object as
       * far as it can be read, but that name (`Web_1`) may be no object at all: a source must not take it
       * to mean the object it replaced is gone.
       */
      readonly key: ObjectKey | undefined;
    }
  /** Not a kind Weft models (ConfigMap, Deployment, …): not an error. */
  | { readonly outcome: 'ignored'; readonly reason: string };

interface KindConverter {
  readonly kind: ConfigKind;
  readonly group: string;
  /** Accepted versions, preferred first (named in the message for an unsupported one). */
  readonly versions: readonly string[];
  readonly namespaced: boolean;
  readonly nameFormat: NameFormat;
  convert(manifest: JsonObject, meta: ObjectMeta): ConfigRecord;
}

const CONVERTERS: readonly KindConverter[] = [
  {
    kind: 'Namespace',
    group: '',
    versions: ['v1'],
    namespaced: false,
    nameFormat: 'dns1123-label',
    convert: convertNamespace,
  },
  {
    kind: 'Pod',
    group: '',
    versions: ['v1'],
    namespaced: true,
    nameFormat: 'dns1123-subdomain',
    convert: convertPod,
  },
  // Service names become DNS labels (`<name>.<ns>.svc`), hence Kubernetes' stricter RFC 1035 rule.
  {
    kind: 'Service',
    group: '',
    versions: ['v1'],
    namespaced: true,
    nameFormat: 'dns1035-label',
    convert: convertService,
  },
  {
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    versions: ['v1'],
    namespaced: true,
    nameFormat: 'dns1123-subdomain',
    convert: convertEndpointSlice,
  },
  {
    kind: 'Gateway',
    group: 'gateway.networking.k8s.io',
    versions: ['v1', 'v1beta1'],
    namespaced: true,
    nameFormat: 'dns1123-subdomain',
    convert: convertGateway,
  },
  {
    kind: 'HTTPRoute',
    group: 'gateway.networking.k8s.io',
    versions: ['v1', 'v1beta1'],
    namespaced: true,
    nameFormat: 'dns1123-subdomain',
    convert: convertHttpRoute,
  },
  {
    kind: 'AuthorizationPolicy',
    group: 'security.istio.io',
    versions: ['v1', 'v1beta1'],
    namespaced: true,
    nameFormat: 'dns1123-subdomain',
    convert: convertAuthorizationPolicy,
  },
  {
    kind: 'PeerAuthentication',
    group: 'security.istio.io',
    versions: ['v1', 'v1beta1'],
    namespaced: true,
    nameFormat: 'dns1123-subdomain',
    convert: convertPeerAuthentication,
  },
];

const CONVERTER_BY_GROUP_KIND: ReadonlyMap<string, KindConverter> = new Map(
  CONVERTERS.map((converter) => [`${converter.group}/${converter.kind}`, converter]),
);

/** Converts one manifest. Never throws: a bad manifest is a `rejected` result naming the field. */
export function convertManifest(manifest: unknown, origin: ManifestOrigin = {}): ConversionResult {
  const reject = (
    kind: string,
    identity: { namespace: string; name: string },
    key: ObjectKey | undefined,
    field: string,
    reason: string,
  ) => ({ outcome: 'rejected', rejection: { kind, ...identity, field, reason, ...origin }, key }) as const;
  const unidentified = { namespace: '', name: '' };
  if (!isObject(manifest))
    return reject('', unidentified, undefined, '', `a manifest must be an object, got ${typeof manifest}`);
  const { apiVersion, kind } = manifest;
  if (typeof kind !== 'string' || kind === '')
    return reject('', unidentified, undefined, 'kind', 'is required');
  if (apiVersion === undefined || apiVersion === null || apiVersion === '')
    return reject(kind, unidentified, undefined, 'apiVersion', 'is required');
  if (typeof apiVersion !== 'string')
    return reject(kind, unidentified, undefined, 'apiVersion', `must be a string, got ${shown(apiVersion)}`);
  const slash = apiVersion.lastIndexOf('/');
  const group = slash === -1 ? '' : apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  const converter = CONVERTER_BY_GROUP_KIND.get(`${group}/${kind}`);
  if (converter === undefined) {
    log.debug({ kind, apiVersion, ...origin }, 'ignoring manifest of a kind Weft does not model');
    return { outcome: 'ignored', reason: `${apiVersion} ${kind} is not a kind Weft uses` };
  }
  const identity = looseIdentity(manifest, converter.namespaced);
  const strict = strictIdentity(manifest, converter.namespaced, converter.nameFormat);
  const key = strict === undefined ? undefined : { kind: converter.kind, ...strict };
  if (!converter.versions.includes(version)) {
    const wanted = converter.versions.map((v) => (group === '' ? v : `${group}/${v}`)).join(' or ');
    return reject(kind, identity, key, 'apiVersion', `must be ${wanted}, got ${JSON.stringify(apiVersion)}`);
  }
  try {
    const meta = readMeta(manifest, converter.namespaced, converter.nameFormat);
    return { outcome: 'converted', record: deepFreeze(converter.convert(manifest, meta)) };
  } catch (err) {
    if (err instanceof FieldError) return reject(kind, identity, key, err.field, err.reason);
    throw err;
  }
}

/** Records are shared by reference between the store and every reader, so make mutation impossible. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
