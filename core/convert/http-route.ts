// gateway.networking.k8s.io/v1 HTTPRoute -> HttpRoute record, with the Gateway API's CRD defaults and
// CEL validation applied here, because files never pass through an API server that would do it.
import { readCors } from './cors.js';
import { readRouteRetry } from './retry.js';
import {
  DEFAULT_PATH_MATCH,
  GATEWAY_API_GROUP,
  HTTP_METHODS,
  PATH_MATCH_TYPES,
  REDIRECT_STATUS_CODES,
  VALUE_MATCH_TYPES,
  type BackendObjectRef,
  type BackendRef,
  type HeaderModifier,
  type HeaderValue,
  type HttpRoute,
  type ParentRef,
  type PathMatch,
  type PathModifier,
  type RedirectStatusCode,
  type RequestMirror,
  type RequestRedirect,
  type RouteFilter,
  type RouteFilterType,
  type RouteMatch,
  type RouteRule,
  type RouteTimeouts,
  type UrlRewrite,
  type ValueMatch,
} from '../model/index.js';
import { parseGatewayDuration } from './duration.js';
import {
  fail,
  optionalEnum,
  optionalInteger,
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
import { isGatewayHostname, nameProblem } from './names.js';

// Limits from apis/v1/httproute_types.go (see gateway-api.md §1, §2, §5, §6.1).
const MAX_PARENT_REFS = 32;
const MAX_HOSTNAMES = 16;
const MAX_RULES = 16;
const MAX_MATCHES_PER_RULE = 64;
const MAX_MATCHES_PER_ROUTE = 128;
const MAX_VALUE_MATCHES = 16;
const MAX_FILTERS = 16;
const MAX_BACKEND_REFS = 16;
const MAX_MODIFIER_ENTRIES = 16;
const MAX_WEIGHT = 1_000_000;
const MAX_PATH_CHARS = 1024;
const MAX_HEADER_VALUE_CHARS = 4096;

const SUPPORTED_FILTERS: readonly RouteFilterType[] = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestRedirect',
  'URLRewrite',
  'RequestMirror',
  'CORS',
];

/** RFC 3986 path characters or %XX escapes. */
const PATH_CHARS_RE = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})+$/;
/** An HTTP header field name (RFC 7230 token). */
const HEADER_NAME_RE = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

/** What rule-level checks need to know about the rule while reading its parts. */
interface RuleContext {
  readonly routeNamespace: string;
  readonly matches: readonly RouteMatch[];
}

export function convertHttpRoute(manifest: JsonObject, meta: ObjectMeta): HttpRoute {
  const spec = optionalObject(manifest.spec, 'spec') ?? {};
  const parentRefs = (optionalList(spec.parentRefs, 'spec.parentRefs', MAX_PARENT_REFS) ?? []).map(
    (entry, i) => readParentRef(entry, `spec.parentRefs[${i}]`, meta.namespace),
  );
  checkDistinctParents(parentRefs);
  const hostnames = stringList(spec.hostnames, 'spec.hostnames', MAX_HOSTNAMES);
  hostnames.forEach((hostname, i) => {
    if (!isGatewayHostname(hostname)) {
      fail(
        `spec.hostnames[${i}]`,
        `must be a DNS name, optionally starting with "*.", got ${shown(hostname)}`,
      );
    }
  });
  const ruleList = optionalList(spec.rules, 'spec.rules', MAX_RULES) ?? [];
  const rules =
    ruleList.length === 0
      ? [defaultRule()]
      : ruleList.map((entry, i) => readRule(entry, `spec.rules[${i}]`, meta.namespace));
  checkRuleNames(rules);
  const totalMatches = rules.reduce((sum, rule) => sum + rule.matches.length, 0);
  if (totalMatches > MAX_MATCHES_PER_ROUTE) {
    fail('spec.rules', `must have at most ${MAX_MATCHES_PER_ROUTE} matches in total, got ${totalMatches}`);
  }
  return {
    kind: 'HTTPRoute',
    name: meta.name,
    namespace: meta.namespace,
    labels: meta.labels,
    createdAtMs: meta.createdAtMs,
    parentRefs,
    hostnames,
    rules,
  };
}

/** A route without rules gets one rule matching PathPrefix "/" with no backends (it answers 500). */
function defaultRule(): RouteRule {
  return {
    name: undefined,
    matches: [defaultMatch()],
    filters: [],
    backendRefs: [],
    timeouts: { requestMs: undefined, backendRequestMs: undefined },
    retry: undefined,
  };
}

function defaultMatch(): RouteMatch {
  return { path: DEFAULT_PATH_MATCH, headers: [], queryParams: [], method: undefined };
}

/** `group` may be written as "" (the core group), which is not the same as leaving it out. */
function readGroup(value: unknown, field: string, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'string') fail(field, `must be a string, got ${shown(value)}`);
  if (value !== '' && nameProblem(value, 'dns1123-subdomain') !== undefined) {
    fail(field, `must be "" or an API group name, got ${shown(value)}`);
  }
  return value;
}

function readParentRef(entry: unknown, field: string, routeNamespace: string): ParentRef {
  const ref = requireObject(entry, field);
  return {
    group: readGroup(ref.group, `${field}.group`, GATEWAY_API_GROUP),
    kind: optionalString(ref.kind, `${field}.kind`) ?? 'Gateway',
    name: requireString(ref.name, `${field}.name`),
    namespace: optionalString(ref.namespace, `${field}.namespace`) ?? routeNamespace,
    port: optionalPort(ref.port, `${field}.port`),
    sectionName: optionalString(ref.sectionName, `${field}.sectionName`),
  };
}

/** The same parent may appear twice only if every such entry names a different sectionName or port. */
function checkDistinctParents(parentRefs: readonly ParentRef[]): void {
  const seen = new Map<string, string[]>();
  parentRefs.forEach((ref, i) => {
    const parent = `${ref.group}/${ref.kind}/${ref.namespace}/${ref.name}`;
    const section = `${ref.sectionName ?? ''}:${ref.port ?? ''}`;
    const sections = seen.get(parent) ?? [];
    if (sections.length > 0 && (section === ':' || sections.includes(section) || sections.includes(':'))) {
      fail(
        `spec.parentRefs[${i}]`,
        'must differ from an earlier entry for the same parent by sectionName or port',
      );
    }
    sections.push(section);
    seen.set(parent, sections);
  });
}

function checkRuleNames(rules: readonly RouteRule[]): void {
  const names = new Set<string>();
  rules.forEach((rule, i) => {
    if (rule.name === undefined) return;
    if (names.has(rule.name))
      fail(`spec.rules[${i}].name`, `must be unique within the route, got ${shown(rule.name)} twice`);
    names.add(rule.name);
  });
}

function readRule(entry: unknown, field: string, routeNamespace: string): RouteRule {
  const rule = requireObject(entry, field);
  const name = optionalString(rule.name, `${field}.name`);
  if (name !== undefined && nameProblem(name, 'dns1123-subdomain') !== undefined) {
    fail(`${field}.name`, `must be a DNS-1123 subdomain, got ${shown(name)}`);
  }
  const matchList = optionalList(rule.matches, `${field}.matches`, MAX_MATCHES_PER_RULE) ?? [];
  const matches =
    matchList.length === 0
      ? [defaultMatch()]
      : matchList.map((m, i) => readMatch(m, `${field}.matches[${i}]`));
  const context: RuleContext = { routeNamespace, matches };
  const filters = readFilters(rule.filters, `${field}.filters`, context);
  const backendRefs = (optionalList(rule.backendRefs, `${field}.backendRefs`, MAX_BACKEND_REFS) ?? []).map(
    (b, i) => readBackendRef(b, `${field}.backendRefs[${i}]`, context),
  );
  if (backendRefs.length > 0 && filters.some((filter) => filter.type === 'RequestRedirect')) {
    fail(`${field}.filters`, 'must not hold a RequestRedirect when the rule has backendRefs');
  }
  return {
    name,
    matches,
    filters,
    backendRefs,
    timeouts: readTimeouts(rule.timeouts, `${field}.timeouts`),
    retry: readRouteRetry(rule.retry, `${field}.retry`),
  };
}

function readMatch(entry: unknown, field: string): RouteMatch {
  const match = requireObject(entry, field);
  const pathObject = optionalObject(match.path, `${field}.path`);
  return {
    path: pathObject === undefined ? DEFAULT_PATH_MATCH : readPathMatch(pathObject, `${field}.path`),
    headers: readValueMatches(match.headers, `${field}.headers`, (name) => name.toLowerCase()),
    queryParams: readValueMatches(match.queryParams, `${field}.queryParams`, (name) => name),
    method: optionalEnum(match.method, `${field}.method`, HTTP_METHODS),
  };
}

function readPathMatch(path: JsonObject, field: string): PathMatch {
  const type = optionalEnum(path.type, `${field}.type`, PATH_MATCH_TYPES) ?? 'PathPrefix';
  const value = optionalString(path.value, `${field}.value`) ?? '/';
  if (type === 'RegularExpression') {
    checkRegex(value, `${field}.value`);
  } else {
    const wrong = pathValueProblem(value);
    if (wrong !== undefined) fail(`${field}.value`, `${wrong}, got ${shown(value)}`);
  }
  return { type, value };
}

/** The CEL rules for Exact and PathPrefix values (gateway-api.md §2.1). */
function pathValueProblem(value: string): string | undefined {
  if (!value.startsWith('/')) return 'must start with "/"';
  if (value.length > MAX_PATH_CHARS) return `must be at most ${MAX_PATH_CHARS} characters`;
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
    if (value.includes(bad)) return `must not contain ${JSON.stringify(bad)}`;
  }
  if (value.endsWith('/..') || value.endsWith('/.')) return 'must not end with "/.." or "/."';
  if (!PATH_CHARS_RE.test(value)) return 'must contain only RFC 3986 path characters or %XX escapes';
  return undefined;
}

function checkRegex(pattern: string, field: string): void {
  try {
    new RegExp(pattern);
  } catch (err) {
    fail(field, `must be a valid regular expression: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Header and query matches; a later entry whose name is equivalent to an earlier one is ignored (spec). */
function readValueMatches(
  value: unknown,
  field: string,
  normalizeName: (name: string) => string,
): readonly ValueMatch[] {
  const list = optionalList(value, field, MAX_VALUE_MATCHES) ?? [];
  const seen = new Set<string>();
  const matches: ValueMatch[] = [];
  list.forEach((entry, i) => {
    const itemField = `${field}[${i}]`;
    const match = requireObject(entry, itemField);
    const type = optionalEnum(match.type, `${itemField}.type`, VALUE_MATCH_TYPES) ?? 'Exact';
    const name = requireString(match.name, `${itemField}.name`);
    if (!HEADER_NAME_RE.test(name)) fail(`${itemField}.name`, `must be an HTTP token, got ${shown(name)}`);
    const matchValue = requireString(match.value, `${itemField}.value`);
    if (matchValue.length > MAX_HEADER_VALUE_CHARS) {
      fail(`${itemField}.value`, `must be at most ${MAX_HEADER_VALUE_CHARS} characters`);
    }
    if (type === 'RegularExpression') checkRegex(matchValue, `${itemField}.value`);
    const key = normalizeName(name);
    if (seen.has(key)) return;
    seen.add(key);
    matches.push({ type, name, value: matchValue });
  });
  return matches;
}

function readFilters(value: unknown, field: string, context: RuleContext): readonly RouteFilter[] {
  const filters = (optionalList(value, field, MAX_FILTERS) ?? []).map((entry, i) =>
    readFilter(entry, `${field}[${i}]`, context),
  );
  const seen = new Set<RouteFilterType>();
  filters.forEach((filter, i) => {
    // RequestMirror is the one core filter that may repeat (several mirrors).
    if (filter.type !== 'RequestMirror' && seen.has(filter.type)) {
      fail(`${field}[${i}].type`, `must not repeat ${filter.type} in one list of filters`);
    }
    seen.add(filter.type);
  });
  if (seen.has('URLRewrite') && seen.has('RequestRedirect')) {
    fail(field, 'must not combine URLRewrite and RequestRedirect');
  }
  return filters;
}

function readFilter(entry: unknown, field: string, context: RuleContext): RouteFilter {
  const filter = requireObject(entry, field);
  const type = requireString(filter.type, `${field}.type`);
  switch (type) {
    case 'RequestHeaderModifier':
      return {
        type,
        headers: readHeaderModifier(filter.requestHeaderModifier, `${field}.requestHeaderModifier`),
      };
    case 'ResponseHeaderModifier':
      return {
        type,
        headers: readHeaderModifier(filter.responseHeaderModifier, `${field}.responseHeaderModifier`),
      };
    case 'RequestRedirect':
      return { type, redirect: readRedirect(filter.requestRedirect, `${field}.requestRedirect`, context) };
    case 'URLRewrite':
      return { type, rewrite: readRewrite(filter.urlRewrite, `${field}.urlRewrite`, context) };
    case 'RequestMirror':
      return { type, mirror: readMirror(filter.requestMirror, `${field}.requestMirror`, context) };
    case 'CORS':
      return { type, cors: readCors(filter.cors, `${field}.cors`) };
    default:
      return fail(
        `${field}.type`,
        `${shown(type)} is not supported by Weft (supported: ${SUPPORTED_FILTERS.join(', ')})`,
      );
  }
}

function readHeaderModifier(value: unknown, field: string): HeaderModifier {
  const modifier = requireObject(value, field);
  const readValues = (list: unknown, listField: string): readonly HeaderValue[] =>
    (optionalList(list, listField, MAX_MODIFIER_ENTRIES) ?? []).map((entry, i) => {
      const header = requireObject(entry, `${listField}[${i}]`);
      const name = requireString(header.name, `${listField}[${i}].name`);
      if (!HEADER_NAME_RE.test(name))
        fail(`${listField}[${i}].name`, `must be an HTTP token, got ${shown(name)}`);
      return { name, value: requireString(header.value, `${listField}[${i}].value`) };
    });
  const set = readValues(modifier.set, `${field}.set`);
  const add = readValues(modifier.add, `${field}.add`);
  const remove = stringList(modifier.remove, `${field}.remove`, MAX_MODIFIER_ENTRIES);
  // A header name may be the target of only one action within one filter (gateway-api.md §6.1).
  const targeted = new Map<string, string>();
  const claim = (name: string, where: string): void => {
    const key = name.toLowerCase();
    const earlier = targeted.get(key);
    if (earlier !== undefined) fail(where, `must not name header ${shown(name)} already named in ${earlier}`);
    targeted.set(key, where);
  };
  set.forEach((header, i) => claim(header.name, `${field}.set[${i}].name`));
  add.forEach((header, i) => claim(header.name, `${field}.add[${i}].name`));
  remove.forEach((name, i) => claim(name, `${field}.remove[${i}]`));
  return { set, add, remove };
}

function readRedirect(value: unknown, field: string, context: RuleContext): RequestRedirect {
  const redirect = requireObject(value, field);
  const statusCode = redirect.statusCode ?? 302;
  if (!REDIRECT_STATUS_CODES.includes(statusCode as RedirectStatusCode)) {
    fail(
      `${field}.statusCode`,
      `must be one of ${REDIRECT_STATUS_CODES.join(', ')}, got ${shown(statusCode)}`,
    );
  }
  return {
    scheme: optionalEnum(redirect.scheme, `${field}.scheme`, ['http', 'https'] as const),
    hostname: readPreciseHostname(redirect.hostname, `${field}.hostname`),
    path: readPathModifier(redirect.path, `${field}.path`, context),
    port: optionalPort(redirect.port, `${field}.port`),
    statusCode: statusCode as RedirectStatusCode,
  };
}

function readRewrite(value: unknown, field: string, context: RuleContext): UrlRewrite {
  const rewrite = requireObject(value, field);
  return {
    hostname: readPreciseHostname(rewrite.hostname, `${field}.hostname`),
    path: readPathModifier(rewrite.path, `${field}.path`, context),
  };
}

function readPreciseHostname(value: unknown, field: string): string | undefined {
  const hostname = optionalString(value, field);
  if (hostname !== undefined && (hostname.startsWith('*') || !isGatewayHostname(hostname))) {
    fail(field, `must be a DNS name without wildcard, got ${shown(hostname)}`);
  }
  return hostname;
}

function readPathModifier(value: unknown, field: string, context: RuleContext): PathModifier | undefined {
  const modifier = optionalObject(value, field);
  if (modifier === undefined) return undefined;
  const type = optionalEnum(modifier.type, `${field}.type`, [
    'ReplaceFullPath',
    'ReplacePrefixMatch',
  ] as const);
  if (type === undefined) fail(`${field}.type`, 'is required');
  if (type === 'ReplaceFullPath') {
    const path = requireString(modifier.replaceFullPath, `${field}.replaceFullPath`);
    if (!path.startsWith('/')) fail(`${field}.replaceFullPath`, `must start with "/", got ${shown(path)}`);
    return { type, value: path };
  }
  // "" is a valid prefix replacement: `/foo` -> "" turns `/foo/bar` into `/bar`.
  const replacement = modifier.replacePrefixMatch;
  if (typeof replacement !== 'string')
    fail(`${field}.replacePrefixMatch`, `is required, got ${shown(replacement)}`);
  if (replacement !== '' && !replacement.startsWith('/')) {
    fail(`${field}.replacePrefixMatch`, `must be empty or start with "/", got ${shown(replacement)}`);
  }
  const only = context.matches[0];
  if (context.matches.length !== 1 || only === undefined || only.path.type !== 'PathPrefix') {
    fail(`${field}.type`, 'ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix');
  }
  return { type, value: replacement };
}

function readMirror(value: unknown, field: string, context: RuleContext): RequestMirror {
  const mirror = requireObject(value, field);
  const backendRef = readBackendObjectRef(mirror.backendRef, `${field}.backendRef`, context);
  const percent = optionalInteger(mirror.percent, `${field}.percent`, { min: 0, max: 100 });
  const fractionObject = optionalObject(mirror.fraction, `${field}.fraction`);
  if (percent !== undefined && fractionObject !== undefined)
    fail(field, 'must not set both percent and fraction');
  if (fractionObject === undefined)
    return { backendRef, fraction: { numerator: percent ?? 100, denominator: 100 } };
  const numerator = optionalInteger(fractionObject.numerator, `${field}.fraction.numerator`, {
    min: 0,
    max: 2 ** 31 - 1,
  });
  if (numerator === undefined) fail(`${field}.fraction.numerator`, 'is required');
  const denominator =
    optionalInteger(fractionObject.denominator, `${field}.fraction.denominator`, {
      min: 1,
      max: 2 ** 31 - 1,
    }) ?? 100;
  if (numerator > denominator)
    fail(`${field}.fraction`, `numerator must not exceed denominator, got ${numerator}/${denominator}`);
  return { backendRef, fraction: { numerator, denominator } };
}

function readBackendObjectRef(value: unknown, field: string, context: RuleContext): BackendObjectRef {
  const ref = requireObject(value, field);
  const group = readGroup(ref.group, `${field}.group`, '');
  const kind = optionalString(ref.kind, `${field}.kind`) ?? 'Service';
  const port = optionalPort(ref.port, `${field}.port`);
  if (group === '' && kind === 'Service' && port === undefined)
    fail(`${field}.port`, 'is required for a Service backend');
  return {
    group,
    kind,
    name: requireString(ref.name, `${field}.name`),
    namespace: optionalString(ref.namespace, `${field}.namespace`) ?? context.routeNamespace,
    port,
  };
}

function readBackendRef(value: unknown, field: string, context: RuleContext): BackendRef {
  const object = readBackendObjectRef(value, field, context);
  const ref = requireObject(value, field);
  const filters = readFilters(ref.filters, `${field}.filters`, context);
  const weight = optionalInteger(ref.weight, `${field}.weight`, { min: 0, max: MAX_WEIGHT }) ?? 1;
  return { ...object, weight, filters };
}

function readTimeouts(value: unknown, field: string): RouteTimeouts {
  const timeouts = optionalObject(value, field) ?? {};
  const readDuration = (raw: unknown, durationField: string): number | undefined => {
    const text = optionalString(raw, durationField);
    if (text === undefined) return undefined;
    const ms = parseGatewayDuration(text);
    if (ms === undefined)
      fail(durationField, `must be a duration such as "500ms", "10s" or "1m30s", got ${shown(text)}`);
    return ms;
  };
  const requestMs = readDuration(timeouts.request, `${field}.request`);
  const backendRequestMs = readDuration(timeouts.backendRequest, `${field}.backendRequest`);
  if (
    requestMs !== undefined &&
    requestMs !== 0 &&
    backendRequestMs !== undefined &&
    backendRequestMs > requestMs
  ) {
    fail(
      `${field}.backendRequest`,
      `must not exceed ${field}.request (${requestMs}ms), got ${backendRequestMs}ms`,
    );
  }
  return { requestMs, backendRequestMs };
}
