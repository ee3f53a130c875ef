// security.istio.io/v1 (and v1beta1) AuthorizationPolicy -> AuthorizationPolicy record, with istiod's
// validation (pkg/config/validation) as summarised in /work/shared/reference/authz.md §1.
import {
  AUTHORIZATION_ACTIONS,
  DRY_RUN_ANNOTATION,
  GATEWAY_API_GROUP,
  parseCidr,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type Cidr,
  type ConditionAttribute,
  type PolicyAttachment,
  type PolicyCondition,
  type PolicyOperation,
  type PolicySource,
  type PolicyTargetRef,
} from '../model/index.js';
import {
  fail,
  optionalEnum,
  optionalList,
  optionalObject,
  optionalString,
  rejectUnknownFields,
  requireObject,
  requireString,
  shown,
  stringList,
  stringMap,
  type JsonObject,
} from './fields.js';
import type { ObjectMeta } from './meta.js';

// Limits from the CRD (istio/api security/v1beta1/authorization_policy.proto).
const MAX_RULES = 512;
const MAX_TARGET_REFS = 16;
const MAX_SERVICE_ACCOUNTS = 16;

const RULE_FIELDS = ['from', 'to', 'when'] as const;
const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const;
const OPERATION_FIELDS = [
  'hosts',
  'notHosts',
  'ports',
  'notPorts',
  'methods',
  'notMethods',
  'paths',
  'notPaths',
] as const;
const CONDITION_FIELDS = ['key', 'values', 'notValues'] as const;

/** The group each supported targetRef kind lives in; it is also the default when `group` is left out. */
const TARGET_KIND_GROUPS: Readonly<Record<string, string>> = {
  Gateway: GATEWAY_API_GROUP,
  GatewayClass: GATEWAY_API_GROUP,
  Service: '',
  ServiceEntry: 'networking.istio.io',
};

const FIXED_CONDITION_KEYS: ReadonlySet<string> = new Set<ConditionAttribute>([
  'source.ip',
  'remote.ip',
  'source.namespace',
  'source.principal',
  'source.serviceAccount',
  'source.trustDomain',
  'request.auth.principal',
  'request.auth.audiences',
  'request.auth.presenter',
  'destination.ip',
  'destination.port',
  'connection.sni',
]);
const OBSOLETE_CONDITION_PREFIXES = [
  'destination.labels',
  'destination.name',
  'destination.namespace',
  'destination.user',
];
const IP_CONDITION_ATTRIBUTES: ReadonlySet<ConditionAttribute> = new Set([
  'source.ip',
  'remote.ip',
  'destination.ip',
]);
const HEADER_KEY_RE = /^request\.headers\[([^[\]]+)\]$/;
const CLAIM_KEY_RE = /^request\.auth\.claims((?:\[[^[\]]+\])+)$/;

export function convertAuthorizationPolicy(manifest: JsonObject, meta: ObjectMeta): AuthorizationPolicy {
  const spec = optionalObject(manifest.spec, 'spec') ?? {};
  const action = optionalEnum(spec.action, 'spec.action', AUTHORIZATION_ACTIONS) ?? 'ALLOW';
  const provider = readProvider(spec, action);
  const ruleList = optionalList(spec.rules, 'spec.rules', MAX_RULES) ?? [];
  if (ruleList.length === 0 && (action === 'DENY' || action === 'CUSTOM')) {
    fail(
      'spec.rules',
      `must not be empty for action ${action}, which would never match; write "rules: [{}]" to match everything`,
    );
  }
  return {
    kind: 'AuthorizationPolicy',
    name: meta.name,
    namespace: meta.namespace,
    labels: meta.labels,
    createdAtMs: meta.createdAtMs,
    attachment: readAttachment(spec),
    action,
    provider,
    rules: ruleList.map((entry, i) => readRule(entry, `spec.rules[${i}]`, meta.namespace)),
    dryRun: readDryRun(meta.annotations),
  };
}

function readProvider(spec: JsonObject, action: AuthorizationPolicy['action']): string | undefined {
  const provider = optionalObject(spec.provider, 'spec.provider');
  if (provider !== undefined && action !== 'CUSTOM')
    fail('spec.provider', `is only valid with action CUSTOM, got action ${action}`);
  if (action !== 'CUSTOM') return undefined;
  if (provider === undefined) fail('spec.provider.name', 'is required when action is CUSTOM');
  return requireString(provider.name, 'spec.provider.name');
}

function readDryRun(annotations: Readonly<Record<string, string>>): boolean {
  const value = annotations[DRY_RUN_ANNOTATION];
  if (value === undefined) return false;
  if (value !== 'true' && value !== 'false') {
    fail(`metadata.annotations["${DRY_RUN_ANNOTATION}"]`, `must be "true" or "false", got ${shown(value)}`);
  }
  return value === 'true';
}

function readAttachment(spec: JsonObject): PolicyAttachment {
  const selector = optionalObject(spec.selector, 'spec.selector');
  const singleRef = optionalObject(spec.targetRef, 'spec.targetRef');
  const refList = optionalList(spec.targetRefs, 'spec.targetRefs', MAX_TARGET_REFS) ?? [];
  const setCount = [selector !== undefined, singleRef !== undefined, refList.length > 0].filter(
    Boolean,
  ).length;
  if (setCount > 1) fail('spec', 'must set at most one of selector, targetRef and targetRefs');
  if (refList.length > 0) {
    return {
      type: 'targetRefs',
      targetRefs: refList.map((ref, i) => readTargetRef(ref, `spec.targetRefs[${i}]`)),
    };
  }
  if (singleRef !== undefined)
    return { type: 'targetRefs', targetRefs: [readTargetRef(singleRef, 'spec.targetRef')] };
  if (selector !== undefined) {
    const matchLabels = stringMap(selector.matchLabels, 'spec.selector.matchLabels');
    // Istio treats an empty selector like none: the policy is namespace-wide.
    if (Object.keys(matchLabels).length > 0) return { type: 'selector', matchLabels };
  }
  return { type: 'namespace' };
}

function readTargetRef(value: unknown, field: string): PolicyTargetRef {
  const ref = requireObject(value, field);
  const kind = requireString(ref.kind, `${field}.kind`);
  const expectedGroup = TARGET_KIND_GROUPS[kind];
  if (expectedGroup === undefined) {
    fail(`${field}.kind`, `must be one of ${Object.keys(TARGET_KIND_GROUPS).join(', ')}, got ${shown(kind)}`);
  }
  const group = ref.group === undefined || ref.group === null ? expectedGroup : ref.group;
  if (group !== expectedGroup)
    fail(`${field}.group`, `must be ${shown(expectedGroup)} for kind ${kind}, got ${shown(group)}`);
  return {
    group: expectedGroup,
    kind,
    name: requireString(ref.name, `${field}.name`),
    namespace: optionalString(ref.namespace, `${field}.namespace`),
  };
}

/** A present-but-empty `from`/`to` is rejected, so an empty list in the record always means "absent". */
function readClauseList(value: unknown, field: string): readonly unknown[] {
  if (value === undefined || value === null) return [];
  const list = optionalList(value, field) ?? [];
  if (list.length === 0) fail(field, 'must not be empty when present; leave it out to match anything');
  return list;
}

function readRule(entry: unknown, field: string, policyNamespace: string): AuthorizationRule {
  const rule = requireObject(entry, field);
  rejectUnknownFields(rule, field, RULE_FIELDS);
  const from = readClauseList(rule.from, `${field}.from`).map((item, i) => {
    const itemField = `${field}.from[${i}]`;
    const wrapper = requireObject(item, itemField);
    rejectUnknownFields(wrapper, itemField, ['source']);
    return readSource(
      requireObject(wrapper.source, `${itemField}.source`),
      `${itemField}.source`,
      policyNamespace,
    );
  });
  const to = readClauseList(rule.to, `${field}.to`).map((item, i) => {
    const itemField = `${field}.to[${i}]`;
    const wrapper = requireObject(item, itemField);
    rejectUnknownFields(wrapper, itemField, ['operation']);
    return readOperation(
      requireObject(wrapper.operation, `${itemField}.operation`),
      `${itemField}.operation`,
    );
  });
  const when = (optionalList(rule.when, `${field}.when`) ?? []).map((item, i) =>
    readCondition(requireObject(item, `${field}.when[${i}]`), `${field}.when[${i}]`),
  );
  return { from, to, when };
}

function readSource(source: JsonObject, field: string, policyNamespace: string): PolicySource {
  rejectUnknownFields(source, field, SOURCE_FIELDS);
  const strings = (name: (typeof SOURCE_FIELDS)[number], max?: number): readonly string[] =>
    stringList(source[name], `${field}.${name}`, max);
  const cidrs = (name: (typeof SOURCE_FIELDS)[number]): readonly Cidr[] =>
    readCidrs(source[name], `${field}.${name}`);
  const result: PolicySource = {
    principals: strings('principals'),
    notPrincipals: strings('notPrincipals'),
    requestPrincipals: strings('requestPrincipals'),
    notRequestPrincipals: strings('notRequestPrincipals'),
    namespaces: strings('namespaces'),
    notNamespaces: strings('notNamespaces'),
    serviceAccounts: readServiceAccounts(source.serviceAccounts, `${field}.serviceAccounts`, policyNamespace),
    notServiceAccounts: readServiceAccounts(
      source.notServiceAccounts,
      `${field}.notServiceAccounts`,
      policyNamespace,
    ),
    ipBlocks: cidrs('ipBlocks'),
    notIpBlocks: cidrs('notIpBlocks'),
    remoteIpBlocks: cidrs('remoteIpBlocks'),
    notRemoteIpBlocks: cidrs('notRemoteIpBlocks'),
  };
  if (Object.values(result).every((list: readonly unknown[]) => list.length === 0)) {
    fail(field, 'must set at least one field; an empty source is not allowed');
  }
  const usesServiceAccounts = result.serviceAccounts.length > 0 || result.notServiceAccounts.length > 0;
  const usesIdentity =
    result.principals.length +
      result.notPrincipals.length +
      result.namespaces.length +
      result.notNamespaces.length >
    0;
  if (usesServiceAccounts && usesIdentity) {
    fail(
      field,
      'must not combine serviceAccounts/notServiceAccounts with principals or namespaces (or their not forms)',
    );
  }
  return result;
}

/** `ns/sa`, or a bare `sa` meaning the policy's namespace (expanded here); wildcards are not allowed. */
function readServiceAccounts(value: unknown, field: string, policyNamespace: string): readonly string[] {
  return stringList(value, field, MAX_SERVICE_ACCOUNTS).map((account, i) => {
    const parts = account.split('/');
    if (account.includes('*') || parts.length > 2 || parts.some((part) => part === '')) {
      fail(
        `${field}[${i}]`,
        `must be "<namespace>/<service-account>" or "<service-account>" without wildcards, got ${shown(account)}`,
      );
    }
    return parts.length === 1 ? `${policyNamespace}/${account}` : account;
  });
}

function readCidrs(value: unknown, field: string): readonly Cidr[] {
  return (optionalList(value, field) ?? []).map((item, i) => {
    const cidr = typeof item === 'string' ? parseCidr(item) : undefined;
    if (cidr === undefined) fail(`${field}[${i}]`, `must be an IP address or CIDR block, got ${shown(item)}`);
    return cidr;
  });
}

function readOperation(operation: JsonObject, field: string): PolicyOperation {
  rejectUnknownFields(operation, field, OPERATION_FIELDS);
  const strings = (name: (typeof OPERATION_FIELDS)[number]): readonly string[] =>
    stringList(operation[name], `${field}.${name}`);
  const result: PolicyOperation = {
    hosts: strings('hosts'),
    notHosts: strings('notHosts'),
    ports: readPorts(operation.ports, `${field}.ports`),
    notPorts: readPorts(operation.notPorts, `${field}.notPorts`),
    methods: strings('methods'),
    notMethods: strings('notMethods'),
    paths: strings('paths'),
    notPaths: strings('notPaths'),
  };
  if (Object.values(result).every((list: readonly unknown[]) => list.length === 0)) {
    fail(field, 'must set at least one field; an empty operation is not allowed');
  }
  return result;
}

/** Ports are strings in the CRD ("8080"); a YAML number is accepted too. */
function readPorts(value: unknown, field: string): readonly number[] {
  return (optionalList(value, field) ?? []).map((item, i) => {
    const port = parsePort(item, 1);
    if (port === undefined) fail(`${field}[${i}]`, `must be a port number 1-65535, got ${shown(item)}`);
    return port;
  });
}

function parsePort(value: unknown, min: number): number | undefined {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^[0-9]{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= min && port <= 65535 ? port : undefined;
}

function readCondition(condition: JsonObject, field: string): PolicyCondition {
  rejectUnknownFields(condition, field, CONDITION_FIELDS);
  const key = requireString(condition.key, `${field}.key`);
  const { attribute, argument } = parseConditionKey(key, `${field}.key`);
  const values = readConditionValues(condition.values, `${field}.values`, attribute);
  const notValues = readConditionValues(condition.notValues, `${field}.notValues`, attribute);
  if (values.length === 0 && notValues.length === 0) fail(field, 'must set values or notValues');
  return { key, attribute, argument, values, notValues };
}

function parseConditionKey(
  key: string,
  field: string,
): { attribute: ConditionAttribute; argument: readonly string[] } {
  if (FIXED_CONDITION_KEYS.has(key)) return { attribute: key as ConditionAttribute, argument: [] };
  const header = HEADER_KEY_RE.exec(key);
  if (header?.[1] !== undefined) return { attribute: 'request.headers', argument: [header[1]] };
  const claims = CLAIM_KEY_RE.exec(key);
  if (claims?.[1] !== undefined) {
    return { attribute: 'request.auth.claims', argument: claims[1].slice(1, -1).split('][') };
  }
  if (key.startsWith('experimental.envoy.filters.')) return { attribute: 'experimental', argument: [] };
  if (OBSOLETE_CONDITION_PREFIXES.some((prefix) => key.startsWith(prefix))) {
    fail(field, `${shown(key)} is obsolete and no longer supported`);
  }
  return fail(
    field,
    `must be a supported condition key (e.g. source.ip, request.headers[<name>]), got ${shown(key)}`,
  );
}

function readConditionValues(
  value: unknown,
  field: string,
  attribute: ConditionAttribute,
): readonly string[] {
  const values = (optionalList(value, field) ?? []).map((item, i) => {
    // YAML turns an unquoted port into a number; the CRD means the string.
    if (attribute === 'destination.port' && typeof item === 'number') return String(item);
    return requireString(item, `${field}[${i}]`);
  });
  values.forEach((text, i) => {
    if (IP_CONDITION_ATTRIBUTES.has(attribute) && parseCidr(text) === undefined) {
      fail(`${field}[${i}]`, `must be an IP address or CIDR block for ${attribute}, got ${shown(text)}`);
    }
    if (attribute === 'destination.port' && parsePort(text, 0) === undefined) {
      fail(`${field}[${i}]`, `must be a port number 0-65535 for destination.port, got ${shown(text)}`);
    }
  });
  return values;
}
