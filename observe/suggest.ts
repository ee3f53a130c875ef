// Least-privilege AuthorizationPolicies from observed flows: ALLOW policies that admit exactly the
// traffic that was seen (as closely as the policy language can say it), printed for review, never
// applied. Pure: events (and optionally the config, for pod labels and Service ports) in, manifests and
// YAML out, sorted, so the same flows give the same text.
//
// What is suggested (authz.md §4 is why there are two kinds):
// - L4, per destination workload: the destination agent's `inbound` events that were ALLOWED. One
//   `selector` policy per workload, one rule per source principal (`td/ns/N/sa/S`, no `spiffe://`)
//   with exactly the container ports that principal reached. Sources without identity (plaintext) are
//   allowed by address (`ipBlocks`), grouped by the ports they reached, with a warning: pod addresses
//   change. Pods behind a waypoint get a rule for the waypoint's principal this way: at their agent the
//   waypoint is the source.
// - L7, per Service behind a waypoint: the waypoint's `request` events that were ALLOWED. One policy per
//   Service with `targetRefs: [Service]` (enforced by the Service's waypoint), one rule per principal
//   whose operations list methods and path patterns:
//     * a path of two or more segments becomes a prefix of all but its last segment
//       (`/api/users/42` → `/api/users/*`, `/api/users` → `/api/*`); a shorter one stays exact
//       (`/healthz`, `/`). The last segment is where identifiers live; keeping the rest keeps the
//       policy to the resources that were used. gRPC paths (`/pkg.Service/Method`) stay exact: method
//       names are a fixed set, and a prefix would admit every method of the service.
//     * methods are merged per pattern; patterns with the same methods share one operation; a pattern
//       inside another's prefix with no method the other lacks is dropped.
//   Raw TCP through the waypoint (its `close` events with protocol tcp) cannot be narrowed by method or
//   path: the principal gets a rule limited to the Service ports when the config says which Service port
//   led to the backend port, else a rule without `to`, with a warning.
// - Denied and errored flows were not allowed traffic and are left out (counted in the header). So are
//   outbound agent events (policy is enforced where traffic arrives, and the inbound event says it) and
//   requests addressed to a workload rather than a Service (a Service-attached policy does not cover
//   them, #56505; skipped with a count). Inbound `open` and `close` events both count: either says the
//   connection was allowed, and a connection still open when observation ended has only its `open`.
// - Selectors: the labels the workload's pods share, from the config: `app.kubernetes.io/name` and/or
//   `app` when present and they select no other workload's pods, else every shared label except the
//   per-revision ones (pod-template-hash, …). Without the config (or the pods in it), `app: <workload>`
//   is a guess, and the policy says so.
import { stringify } from 'yaml';
import type { FlowEvent } from '../core/flows/event.js';
import type { Labels } from '../core/model/labels.js';
import { labelsMatch } from '../core/model/labels.js';
import type { Service, ServiceEndpoint } from '../core/model/service.js';
import { isTerminated, type Workload } from '../core/model/workload.js';
import { workloadNames } from '../core/telemetry/workload-names.js';

/** What the suggestion may look up in the config; ConfigStore is one. */
export interface SuggestionConfig {
  workload(namespace: string, name: string): Workload | undefined;
  workloadByIp(ip: string): Workload | undefined;
  workloadsInNamespace(namespace: string): Iterable<Workload>;
  service(namespace: string, name: string): Service | undefined;
  endpointsOf(service: Service): readonly ServiceEndpoint[];
}

export interface SuggestOptions {
  readonly config?: SuggestionConfig;
}

export interface PolicySource {
  readonly principals?: readonly string[];
  readonly ipBlocks?: readonly string[];
}

export interface PolicyOperation {
  readonly ports?: readonly string[];
  readonly methods?: readonly string[];
  readonly paths?: readonly string[];
}

export interface PolicyRule {
  readonly from: readonly { readonly source: PolicySource }[];
  readonly to?: readonly { readonly operation: PolicyOperation }[];
}

/** An AuthorizationPolicy manifest as it will be printed. */
export interface SuggestedPolicy {
  readonly apiVersion: 'security.istio.io/v1';
  readonly kind: 'AuthorizationPolicy';
  readonly metadata: { readonly name: string; readonly namespace: string };
  readonly spec: {
    readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> };
    readonly targetRefs?: readonly { readonly kind: 'Service'; readonly group: ''; readonly name: string }[];
    readonly action: 'ALLOW';
    readonly rules: readonly PolicyRule[];
  };
}

export interface PolicyNote {
  /** `namespace/name` of the policy. */
  readonly policy: string;
  readonly message: string;
}

export interface SkippedFlows {
  readonly reason: string;
  readonly count: number;
}

export interface PolicySuggestion {
  /** Sorted by namespace, then name. */
  readonly policies: readonly SuggestedPolicy[];
  /** Header comment, then the policies as YAML documents, each preceded by its notes as comments. */
  readonly yaml: string;
  readonly flows: {
    readonly events: number;
    readonly fromMs: number | undefined;
    readonly toMs: number | undefined;
    /** Allowed inbound connection events (L4) and allowed waypoint requests and TCP connections (L7). */
    readonly inboundAllowed: number;
    readonly waypointAllowed: number;
    readonly denied: number;
    readonly errored: number;
  };
  readonly skipped: readonly SkippedFlows[];
  /** Things the reviewer should check, per policy: guessed selectors, addresses, broad rules. */
  readonly notes: readonly PolicyNote[];
}

const NAME_PREFIX = 'weft-suggested-';
/** Kubernetes object names (DNS-1123 subdomain) are at most 253 characters. */
const MAX_NAME_LENGTH = 253;
/** The CRD's limit on rules per policy. */
const MAX_RULES = 512;
/** Labels that differ per revision or per pod, so a selector on them would miss the next rollout. */
const UNSTABLE_LABELS: ReadonlySet<string> = new Set([
  'pod-template-hash',
  'controller-revision-hash',
  'pod-template-generation',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'batch.kubernetes.io/controller-uid',
  'controller-uid',
]);
const NAME_LABELS = ['app.kubernetes.io/name', 'app'] as const;

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sorted(values: Iterable<string>): string[] {
  return [...values].sort(cmp);
}

function sortedPorts(ports: Iterable<number>): string[] {
  return [...ports].sort((a, b) => a - b).map(String);
}

/** Istio writes principals without the scheme. */
export function principalOf(identity: string): string {
  return identity.startsWith('spiffe://') ? identity.slice('spiffe://'.length) : identity;
}

/**
 * The pattern a request path is allowed by (see the header): all but the last segment plus `*` for two
 * or more segments, else the exact path; exact for gRPC. Undefined when the path cannot be written as a
 * pattern that admits it (a `*` at the end of an exact path, or `{`/`}`, which would read as a template).
 */
export function pathPattern(path: string, protocol: 'http' | 'grpc' | 'tcp'): string | undefined {
  if (!path.startsWith('/') || path.includes('{') || path.includes('}')) return undefined;
  const segments = path.slice(1).split('/');
  if (protocol === 'grpc' || segments.length < 2) return path.endsWith('*') ? undefined : path;
  return path.slice(0, path.lastIndexOf('/') + 1) + '*';
}

/** Whether pattern `inner` admits only paths that prefix pattern `outer` admits. */
function covers(outer: string, inner: string): boolean {
  if (!outer.endsWith('*') || outer === inner) return false;
  const prefix = outer.slice(0, -1);
  return inner.startsWith(prefix) && (inner.endsWith('*') ? inner.length - 1 >= prefix.length : true);
}

// ---- collecting --------------------------------------------------------------------------------------

/** Who a rule is for: a principal, or (plaintext) an address. */
type SourceKey = `principal:${string}` | `ip:${string}`;

function sourceKey(event: FlowEvent): SourceKey {
  return event.source.identity === undefined
    ? `ip:${event.source.ip}`
    : `principal:${principalOf(event.source.identity)}`;
}

interface WorkloadTraffic {
  readonly namespace: string;
  readonly workload: string;
  /** Pod name → address, of the pods that received traffic. */
  readonly pods: Map<string, string>;
  /** Source → container ports reached. */
  readonly sources: Map<SourceKey, Set<number>>;
}

interface ServiceTraffic {
  readonly namespace: string;
  readonly service: string;
  /** Source → path pattern → methods. */
  readonly requests: Map<SourceKey, Map<string, Set<string>>>;
  /** Source → backend (address, port) pairs of raw TCP connections. */
  readonly tcp: Map<SourceKey, Set<string>>;
}

class Collector {
  readonly workloads = new Map<string, WorkloadTraffic>();
  readonly services = new Map<string, ServiceTraffic>();
  readonly skipped = new Map<string, number>();
  inboundAllowed = 0;
  waypointAllowed = 0;
  denied = 0;
  errored = 0;

  skip(reason: string): void {
    this.skipped.set(reason, (this.skipped.get(reason) ?? 0) + 1);
  }

  add(e: FlowEvent): void {
    const inbound = e.reporter.kind === 'agent' && e.direction === 'inbound' && e.type !== 'request';
    const atWaypoint =
      e.reporter.kind === 'waypoint' &&
      (e.type === 'request' || (e.type === 'close' && e.protocol === 'tcp'));
    if (!inbound && !atWaypoint) return;
    if (e.verdict === 'DENIED') return void this.denied++;
    if (e.verdict === 'ERROR') return void this.errored++;
    if (inbound) this.#inbound(e);
    else if (e.type === 'request') this.#request(e);
    else this.#waypointTcp(e);
  }

  #inbound(e: FlowEvent): void {
    const { namespace, pod } = e.destination;
    const workload = e.destination.workload ?? pod;
    if (namespace === undefined || workload === undefined || pod === undefined)
      return this.skip('inbound connections to an address the agent did not name a pod for');
    this.inboundAllowed++;
    const key = `${namespace}/${workload}`;
    let traffic = this.workloads.get(key);
    if (traffic === undefined) {
      traffic = { namespace, workload, pods: new Map(), sources: new Map() };
      this.workloads.set(key, traffic);
    }
    traffic.pods.set(pod, e.destination.ip);
    addTo(traffic.sources, sourceKey(e), e.destination.port);
  }

  /** The Service's traffic, created on its first allowed flow (an entry is a policy: never an empty one). */
  #service(service: NonNullable<FlowEvent['service']>): ServiceTraffic {
    const key = `${service.namespace}/${service.name}`;
    let traffic = this.services.get(key);
    if (traffic === undefined) {
      traffic = { namespace: service.namespace, service: service.name, requests: new Map(), tcp: new Map() };
      this.services.set(key, traffic);
    }
    return traffic;
  }

  #request(e: FlowEvent): void {
    if (e.service === undefined)
      return this.skip('requests addressed to a workload, not a Service (no Service policy covers them)');
    if (e.http === undefined) return this.skip('request events without their HTTP fields');
    const pattern = pathPattern(e.http.path, e.protocol);
    if (pattern === undefined)
      return this.skip('requests whose path no pattern can allow exactly (a trailing * or { })');
    this.waypointAllowed++;
    const traffic = this.#service(e.service);
    let patterns = traffic.requests.get(sourceKey(e));
    if (patterns === undefined) {
      patterns = new Map();
      traffic.requests.set(sourceKey(e), patterns);
    }
    addTo(patterns, pattern, e.http.method);
  }

  #waypointTcp(e: FlowEvent): void {
    if (e.service === undefined)
      return this.skip('TCP through a waypoint addressed to a workload, not a Service');
    this.waypointAllowed++;
    addTo(this.#service(e.service).tcp, sourceKey(e), `${e.destination.ip}|${e.destination.port}`);
  }
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  if (set === undefined) map.set(key, new Set([value]));
  else set.add(value);
}

// ---- building ----------------------------------------------------------------------------------------

/** `from` for one source key, or for several plaintext addresses. */
function fromPrincipal(principal: string): PolicyRule['from'] {
  return [{ source: { principals: [principal] } }];
}

function fromAddresses(ips: readonly string[]): PolicyRule['from'] {
  return [{ source: { ipBlocks: ips } }];
}

function principalsFirst(sources: Iterable<SourceKey>): { principals: string[]; ips: string[] } {
  const principals: string[] = [];
  const ips: string[] = [];
  for (const key of sources) {
    if (key.startsWith('principal:')) principals.push(key.slice('principal:'.length));
    else ips.push(key.slice('ip:'.length));
  }
  return { principals: principals.sort(cmp), ips: ips.sort(compareIps) };
}

function compareIps(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  if (pa.length === 4 && pb.length === 4 && [...pa, ...pb].every(Number.isInteger)) {
    for (let i = 0; i < 4; i++) if (pa[i] !== pb[i]) return (pa[i] as number) - (pb[i] as number);
    return 0;
  }
  return cmp(a, b);
}

/** Plaintext addresses grouped by the exact set of values they reached, one rule per group. */
function addressRules<V>(
  ips: readonly string[],
  valuesOf: (ip: string) => ReadonlySet<V>,
  to: (values: ReadonlySet<V>) => PolicyRule['to'],
): PolicyRule[] {
  const groups = new Map<string, { ips: string[]; values: ReadonlySet<V> }>();
  for (const ip of ips) {
    const values = valuesOf(ip);
    const key = JSON.stringify([...values].map(String).sort(cmp));
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { ips: [ip], values });
    else group.ips.push(ip);
  }
  return [...groups.values()].map((g) => {
    const target = to(g.values);
    return { from: fromAddresses(g.ips), ...(target === undefined ? {} : { to: target }) };
  });
}

class PolicyNamer {
  readonly #used = new Set<string>();

  name(namespace: string, base: string): string {
    const stem = (NAME_PREFIX + base).slice(0, MAX_NAME_LENGTH).replace(/[-.]+$/, '');
    let name = stem;
    for (let i = 2; this.#used.has(`${namespace}/${name}`); i++) {
      const suffix = `-${i}`;
      name = stem.slice(0, MAX_NAME_LENGTH - suffix.length).replace(/[-.]+$/, '') + suffix;
    }
    this.#used.add(`${namespace}/${name}`);
    return name;
  }
}

interface Selector {
  readonly matchLabels: Labels;
  readonly note: string | undefined;
}

function commonLabels(pods: readonly Workload[]): Record<string, string> {
  const [first, ...rest] = pods;
  const common: Record<string, string> = {};
  if (first === undefined) return common;
  for (const [key, value] of Object.entries(first.labels)) {
    if (UNSTABLE_LABELS.has(key)) continue;
    if (rest.every((p) => p.labels[key] === value)) common[key] = value;
  }
  return common;
}

function pick(labels: Labels, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of sorted(keys)) {
    const value = labels[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** The pods a selector would pick in the namespace that are not the workload's own. */
function strangers(selector: Labels, others: readonly Workload[]): Workload[] {
  return others.filter((w) => labelsMatch(selector, w.labels));
}

function selectorFor(traffic: WorkloadTraffic, config: SuggestionConfig | undefined): Selector {
  const guess = (why: string): Selector => ({
    matchLabels: { app: traffic.workload },
    note: `selector guessed as app=${traffic.workload} (${why}): check that it selects the workload's pods`,
  });
  if (config === undefined) return guess('no config to read the pods from');
  const observed = new Set<Workload>();
  for (const [pod, ip] of traffic.pods) {
    const w = config.workload(traffic.namespace, pod) ?? config.workloadByIp(ip);
    if (w !== undefined && w.namespace === traffic.namespace) observed.add(w);
  }
  if (observed.size === 0) return guess('its pods are not in the config');
  const inNamespace = [...config.workloadsInNamespace(traffic.namespace)].filter((w) => !isTerminated(w));
  const own = (w: Workload): boolean => observed.has(w) || workloadNames(w).workload === traffic.workload;
  const group = [...new Set([...observed, ...inNamespace.filter(own)])];
  const others = inNamespace.filter((w) => !own(w));
  const common = commonLabels(group);
  if (Object.keys(common).length === 0) return guess('its pods share no label');
  const byName = pick(common, NAME_LABELS);
  if (Object.keys(byName).length > 0 && strangers(byName, others).length === 0)
    return { matchLabels: byName, note: undefined };
  const all = pick(common, Object.keys(common));
  const extra = strangers(all, others);
  return {
    matchLabels: all,
    note:
      extra.length === 0
        ? undefined
        : `selector also selects ${extra
            .map((w) => w.name)
            .sort(cmp)
            .join(', ')}, which share every label with the workload's pods`,
  };
}

function l4Policy(
  traffic: WorkloadTraffic,
  config: SuggestionConfig | undefined,
  namer: PolicyNamer,
  notes: PolicyNote[],
): SuggestedPolicy {
  const name = namer.name(traffic.namespace, traffic.workload);
  const note = (message: string): void =>
    void notes.push({ policy: `${traffic.namespace}/${name}`, message });
  const selector = selectorFor(traffic, config);
  if (selector.note !== undefined) note(selector.note);
  const { principals, ips } = principalsFirst(traffic.sources.keys());
  const portsTo = (ports: ReadonlySet<number>): PolicyRule['to'] => [
    { operation: { ports: sortedPorts(ports) } },
  ];
  const rules: PolicyRule[] = principals.map((p) => ({
    from: fromPrincipal(p),
    to: portsTo(traffic.sources.get(`principal:${p}`) ?? new Set()),
  }));
  if (ips.length > 0) {
    note(
      `plaintext sources (no mesh identity) allowed by address: ${ips.join(', ')}; pod addresses change, ` +
        'so prefer enrolling those clients in the mesh and allowing their principals',
    );
    rules.push(...addressRules(ips, (ip) => traffic.sources.get(`ip:${ip}`) ?? new Set<number>(), portsTo));
  }
  if (rules.length > MAX_RULES) note(`${rules.length} rules, more than the ${MAX_RULES} a policy may hold`);
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: traffic.namespace },
    spec: { selector: { matchLabels: { ...selector.matchLabels } }, action: 'ALLOW', rules },
  };
}

/** Operations for one source: patterns with the same methods share one; covered patterns are dropped. */
function requestOperations(
  patterns: ReadonlyMap<string, ReadonlySet<string>>,
): { operation: PolicyOperation }[] {
  const kept = [...patterns].filter(
    ([inner, innerMethods]) =>
      ![...patterns].some(
        ([outer, outerMethods]) =>
          covers(outer, inner) && [...innerMethods].every((m) => outerMethods.has(m)),
      ),
  );
  const byMethods = new Map<string, { methods: string[]; paths: string[] }>();
  for (const [path, methods] of kept) {
    const list = sorted(methods);
    const key = list.join(' ');
    const entry = byMethods.get(key);
    if (entry === undefined) byMethods.set(key, { methods: list, paths: [path] });
    else entry.paths.push(path);
  }
  return [...byMethods.values()]
    .map((e) => ({ methods: e.methods, paths: e.paths.sort(cmp) }))
    .sort((a, b) => cmp(a.paths[0] ?? '', b.paths[0] ?? '') || cmp(a.methods.join(' '), b.methods.join(' ')))
    .map((op) => ({ operation: op }));
}

/** The Service ports that lead to the given backend (address, port) pairs, or undefined if any is unknown. */
function servicePorts(
  traffic: ServiceTraffic,
  backends: ReadonlySet<string>,
  config: SuggestionConfig | undefined,
): Set<number> | undefined {
  const service = config?.service(traffic.namespace, traffic.service);
  if (service === undefined || config === undefined) return undefined;
  const endpoints = config.endpointsOf(service);
  const ports = new Set<number>();
  for (const backend of backends) {
    const bar = backend.lastIndexOf('|');
    const ip = backend.slice(0, bar);
    const port = Number(backend.slice(bar + 1));
    const found = service.ports
      .map((p) => p.port)
      .filter((p) => endpoints.some((e) => e.address === ip && e.targetPorts[p] === port));
    if (found.length === 0) return undefined;
    for (const p of found) ports.add(p);
  }
  return ports;
}

function l7Policy(
  traffic: ServiceTraffic,
  config: SuggestionConfig | undefined,
  namer: PolicyNamer,
  notes: PolicyNote[],
): SuggestedPolicy {
  const name = namer.name(traffic.namespace, `${traffic.service}-l7`);
  const note = (message: string): void =>
    void notes.push({ policy: `${traffic.namespace}/${name}`, message });
  const rules: PolicyRule[] = [];
  const sources = principalsFirst(new Set([...traffic.requests.keys(), ...traffic.tcp.keys()]));
  const tcpTo = (key: SourceKey): PolicyRule['to'] => {
    const backends = traffic.tcp.get(key) ?? new Set<string>();
    const ports = servicePorts(traffic, backends, config);
    if (ports !== undefined) return [{ operation: { ports: sortedPorts(ports) } }];
    note(
      `raw TCP from ${key.slice(key.indexOf(':') + 1)} went through the waypoint; without the ` +
        "Service's ports in the config its rule cannot be narrowed, so it allows that source any " +
        'request to the Service',
    );
    return undefined;
  };
  const rulesFor = (key: SourceKey, from: PolicyRule['from']): PolicyRule[] => {
    const out: PolicyRule[] = [];
    const patterns = traffic.requests.get(key);
    if (patterns !== undefined) out.push({ from, to: requestOperations(patterns) });
    if (traffic.tcp.has(key)) {
      const to = tcpTo(key);
      out.push(to === undefined ? { from } : { from, to });
    }
    return out;
  };
  for (const p of sources.principals) rules.push(...rulesFor(`principal:${p}`, fromPrincipal(p)));
  if (sources.ips.length > 0) {
    note(
      `sources without a mesh identity allowed by address: ${sources.ips.join(', ')}; addresses change, ` +
        'prefer allowing principals',
    );
    // Each address keeps its own rule: its requests and its TCP differ too much to group.
    for (const ip of sources.ips) rules.push(...rulesFor(`ip:${ip}`, fromAddresses([ip])));
  }
  if (rules.length > MAX_RULES) note(`${rules.length} rules, more than the ${MAX_RULES} a policy may hold`);
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: traffic.namespace },
    spec: { targetRefs: [{ kind: 'Service', group: '', name: traffic.service }], action: 'ALLOW', rules },
  };
}

// ---- printing ----------------------------------------------------------------------------------------

function iso(ms: number | undefined): string {
  return ms === undefined ? '?' : new Date(ms).toISOString();
}

function comment(lines: readonly string[]): string {
  // A newline inside a name or message must not end the comment and start YAML.
  return lines.map((l) => `# ${l.replace(/[\r\n]+/g, ' ')}`.trimEnd() + '\n').join('');
}

function header(s: Omit<PolicySuggestion, 'yaml'>): string[] {
  const f = s.flows;
  const lines = [
    'Least-privilege AuthorizationPolicies suggested by weft from observed flows. FOR REVIEW before apply:',
    'each ALLOW policy denies its workload or Service everything it does not list, including traffic that',
    'did not happen while flows were observed (a nightly job, a failover path).',
    '',
    f.events === 0
      ? 'Generated from no flows.'
      : `Generated from ${f.events} flows between ${iso(f.fromMs)} and ${iso(f.toMs)}:`,
    `  ${f.inboundAllowed} allowed inbound connection events (L4, at the destination's node agent),`,
    `  ${f.waypointAllowed} allowed requests and TCP connections at waypoints (L7, Service targetRefs).`,
    `Left out, as not allowed traffic: ${f.denied} denied, ${f.errored} errored.`,
  ];
  for (const skipped of s.skipped) lines.push(`Skipped: ${skipped.count} ${skipped.reason}.`);
  if (s.policies.length === 0) lines.push('', 'Nothing to suggest.');
  return lines;
}

function render(s: Omit<PolicySuggestion, 'yaml'>): string {
  let out = comment(header(s));
  for (const policy of s.policies) {
    const id = `${policy.metadata.namespace}/${policy.metadata.name}`;
    const notes = s.notes.filter((n) => n.policy === id).map((n) => `NOTE: ${n.message}`);
    out += '---\n' + comment(notes) + stringify(policy, { lineWidth: 0 });
  }
  return out;
}

export function suggestPolicies(
  events: readonly FlowEvent[],
  options: SuggestOptions = {},
): PolicySuggestion {
  const collector = new Collector();
  let fromMs: number | undefined;
  let toMs: number | undefined;
  for (const e of events) {
    if (fromMs === undefined || e.time < fromMs) fromMs = e.time;
    if (toMs === undefined || e.time > toMs) toMs = e.time;
    collector.add(e);
  }
  const namer = new PolicyNamer();
  const notes: PolicyNote[] = [];
  const policies: SuggestedPolicy[] = [];
  // Workloads before Services, each in key order, so names (and any -2 suffix) come out the same every time.
  for (const key of sorted(collector.workloads.keys()))
    policies.push(l4Policy(collector.workloads.get(key) as WorkloadTraffic, options.config, namer, notes));
  for (const key of sorted(collector.services.keys()))
    policies.push(l7Policy(collector.services.get(key) as ServiceTraffic, options.config, namer, notes));
  policies.sort(
    (a, b) => cmp(a.metadata.namespace, b.metadata.namespace) || cmp(a.metadata.name, b.metadata.name),
  );
  const suggestion: Omit<PolicySuggestion, 'yaml'> = {
    policies,
    flows: {
      events: events.length,
      fromMs,
      toMs,
      inboundAllowed: collector.inboundAllowed,
      waypointAllowed: collector.waypointAllowed,
      denied: collector.denied,
      errored: collector.errored,
    },
    skipped: [...collector.skipped]
      .map(([reason, count]) => ({ reason, count }))
      .sort((a, b) => cmp(a.reason, b.reason)),
    notes: notes.sort((a, b) => cmp(a.policy, b.policy) || cmp(a.message, b.message)),
  };
  return { ...suggestion, yaml: render(suggestion) };
}
