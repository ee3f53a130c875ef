// Edits of manifest objects for the manifest target: set, delete or retype one field somewhere in a
// corpus object, chosen by a path of indices (each taken modulo the keys at that level, one past them
// meaning a new key), so an edit shrinks towards the top of the object and towards its first field.
// Values are those converters are most likely to mishandle: wrong types, empty and huge values,
// boundary numbers, strings of other fields' formats, deep nesting and prototype-shaped keys.
import fc from 'fast-check';

export interface ManifestEdit {
  readonly steps: readonly number[];
  readonly op: 'set' | 'delete';
  readonly value: unknown;
}

/** Field names the converters read, so that new keys land where they are looked for. */
const KEY_POOL = [
  'apiVersion',
  'kind',
  'metadata',
  'name',
  'namespace',
  'labels',
  'annotations',
  'uid',
  'creationTimestamp',
  'deletionTimestamp',
  'spec',
  'status',
  'selector',
  'matchLabels',
  'matchExpressions',
  'ports',
  'port',
  'targetPort',
  'protocol',
  'appProtocol',
  'clusterIP',
  'clusterIPs',
  'type',
  'externalName',
  'podIP',
  'podIPs',
  'ip',
  'phase',
  'nodeName',
  'hostNetwork',
  'serviceAccountName',
  'containers',
  'addressType',
  'endpoints',
  'addresses',
  'conditions',
  'ready',
  'targetRef',
  'gatewayClassName',
  'listeners',
  'parentRefs',
  'hostnames',
  'rules',
  'matches',
  'path',
  'value',
  'headers',
  'queryParams',
  'method',
  'filters',
  'backendRefs',
  'weight',
  'timeouts',
  'retry',
  'codes',
  'attempts',
  'backoff',
  'action',
  'provider',
  'from',
  'to',
  'when',
  'source',
  'operation',
  'principals',
  'namespaces',
  'ipBlocks',
  'paths',
  'methods',
  'hosts',
  'key',
  'values',
  'notValues',
  'targetRefs',
  'mtls',
  'mode',
  'portLevelMtls',
  'items',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '',
];

const KINDS = [
  'Namespace',
  'Pod',
  'Service',
  'EndpointSlice',
  'Gateway',
  'HTTPRoute',
  'AuthorizationPolicy',
  'PeerAuthentication',
  'List',
  'ConfigMap',
];
const API_VERSIONS = [
  'v1',
  'v2',
  'discovery.k8s.io/v1',
  'gateway.networking.k8s.io/v1',
  'gateway.networking.k8s.io/v1beta1',
  'security.istio.io/v1',
  'security.istio.io/v1beta1',
  'security.istio.io/',
  '/v1',
  '',
];

const INTERESTING_VALUES: readonly unknown[] = [
  null,
  '',
  ' ',
  0,
  -1,
  1,
  1.5,
  -0,
  65535,
  65536,
  2 ** 31,
  2 ** 53 + 2,
  Number.MAX_VALUE,
  NaN,
  Infinity,
  true,
  false,
  [],
  {},
  [null],
  [[]],
  [{}],
  '*',
  '/',
  '//',
  '/..',
  '%2F',
  'http',
  'TCP',
  'UDP',
  'SCTP',
  '10.0.0.1',
  '::1',
  'fd00::1',
  '::ffff:10.0.0.1',
  '10.0.0.0/8',
  '1.2.3.4/33',
  '0.0.0.0/0',
  '10.0.0.256',
  '0x10',
  '1e3',
  '080',
  '-1',
  '65536',
  'NaN',
  '\u0000',
  'é',
  '\u{1F642}',
  'a'.repeat(300),
  'a.'.repeat(200),
  'spiffe://cluster.local/ns/a/sa/b',
  'cluster.local/ns/*',
  '*/sa/x',
  '2001-12-14T21:59:43Z',
  '0s',
  '1h',
  '-1s',
  '1.5s',
  '999999999999h',
  '1h2m3s4ms',
  'ambient',
  'none',
  'waypoint',
  'PathPrefix',
  'Exact',
  'RegularExpression',
  '(a+)+$',
  '[',
  '(?=x)',
  '\\1',
  'ALLOW',
  'DENY',
  'AUDIT',
  'CUSTOM',
  'STRICT',
  'PERMISSIVE',
  'DISABLE',
  'UNSET',
  'Running',
  'Succeeded',
  'Failed',
  'None',
  'ExternalName',
  'LoadBalancer',
  'Service',
  'Gateway',
  'kubernetes.io/h2c',
  'request.headers[x]',
  'source.ip',
  'experimental.envoy.filters.x',
  ...KINDS,
  ...API_VERSIONS,
];

function nested(depth: number): unknown {
  let value: unknown = 'deep';
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
  return value;
}

const editValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...INTERESTING_VALUES) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 400 }).map(nested) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map((n) => Array<string>(n).fill('x')) },
  {
    weight: 1,
    arbitrary: fc.dictionary(fc.constantFrom(...KEY_POOL), fc.constantFrom(...INTERESTING_VALUES), {
      maxKeys: 4,
    }),
  },
);

export const manifestEdit: fc.Arbitrary<ManifestEdit> = fc.record({
  steps: fc.array(fc.nat(40), { minLength: 1, maxLength: 7 }),
  op: fc.oneof({ weight: 4, arbitrary: fc.constant('set' as const) }, fc.constant('delete' as const)),
  value: editValue,
});

type Container = Record<string, unknown> | unknown[];

function isContainer(value: unknown): value is Container {
  return typeof value === 'object' && value !== null;
}

/** Sets like JSON.parse does: an own property, even for `__proto__`. */
function setOwn(node: Container, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Applies `edit` to a copy of `manifest`. */
export function applyEdit(manifest: unknown, edit: ManifestEdit): unknown {
  const root = structuredClone(manifest);
  if (!isContainer(root)) return edit.op === 'set' ? edit.value : root;
  let node: Container = root;
  for (let i = 0; i < edit.steps.length; i++) {
    const keys = Object.keys(node);
    const pick = edit.steps[i]! % (keys.length + 1);
    const existing = keys[pick];
    const child = existing === undefined ? undefined : (node as Record<string, unknown>)[existing];
    if (i < edit.steps.length - 1 && existing !== undefined && isContainer(child)) {
      node = child;
      continue;
    }
    const key =
      existing ?? (Array.isArray(node) ? String(node.length) : KEY_POOL[edit.steps[i]! % KEY_POOL.length]!);
    if (edit.op === 'delete') {
      if (Array.isArray(node)) node.splice(Number(key), 1);
      else delete node[key];
    } else if (Array.isArray(node)) node[Number(key)] = structuredClone(edit.value);
    else setOwn(node, key, structuredClone(edit.value));
    break;
  }
  return root;
}
