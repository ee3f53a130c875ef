// A rule's backendRefs: resolved against the store once per config change (Service, port, ready
// endpoints, or why the ref is invalid), then chosen per request by weight (gateway-api.md §5):
// - weights are proportions (0..1,000,000); weight 0 is never chosen;
// - an invalid backend keeps its share, and that share answers 500 (no re-balancing onto the rest);
// - a Service with no ready endpoints keeps its share, and that share answers 503;
// - no backendRefs, or every weight 0, answers 500.
// Every possible answer is a constant object built at compile time, so choosing allocates nothing.
import type {
  BackendObjectRef,
  BackendRef,
  Service,
  ServiceEndpoint,
  ServicePort,
} from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
import type { FilterChain } from './filters.js';
import { defaultRandom, type RandomSource } from './random.js';

/** ResolvedRefs=False reasons (apis/v1 RouteConditionReason). */
export type BackendProblemReason =
  'InvalidKind' | 'BackendNotFound' | 'RefNotPermitted' | 'UnsupportedProtocol';

export interface BackendProblem {
  readonly reason: BackendProblemReason;
  /** Names the field: `spec.rules[0].backendRefs[1]: Service shop/cart not found`. */
  readonly message: string;
}

/** A valid Service backend: where the runtime sends the request (it picks one of `endpoints`). */
export interface ServiceBackend {
  readonly kind: 'service';
  readonly service: Service;
  readonly port: ServicePort;
  /** Ready endpoints serving `port`, each with its target port in `targetPorts[port.port]`; may be empty. */
  readonly endpoints: readonly ServiceEndpoint[];
}

export type ResolvedBackend = ServiceBackend | { readonly kind: 'invalid'; readonly problem: BackendProblem };

/**
 * How a route's refs may cross namespaces. Mesh (Service-parent) routes may point anywhere without a
 * ReferenceGrant (GEP-1294: they only reach what the cluster already lets the client reach); Gateway
 * routes need a grant, and Weft does not model ReferenceGrant yet, so cross-namespace is refused.
 */
export type RouteMode = 'mesh' | 'gateway';

/** Resolves one backendRef (or mirror ref) to a Service port and its ready endpoints, or says why not. */
export function resolveBackendRef(
  store: ConfigStore,
  ref: BackendObjectRef,
  routeNamespace: string,
  mode: RouteMode,
  field: string,
): ResolvedBackend {
  const invalid = (reason: BackendProblemReason, problem: string): ResolvedBackend => ({
    kind: 'invalid',
    problem: { reason, message: `${field}: ${problem}` },
  });
  const target = `${ref.namespace}/${ref.name}`;
  if (ref.group !== '' || ref.kind !== 'Service') {
    const groupKind = ref.group === '' ? ref.kind : `${ref.kind}.${ref.group}`;
    return invalid('InvalidKind', `${groupKind} is not a supported backend kind (only core Service)`);
  }
  if (mode === 'gateway' && ref.namespace !== routeNamespace) {
    return invalid(
      'RefNotPermitted',
      `Service ${target} is in another namespace and no ReferenceGrant allows it`,
    );
  }
  const service = store.service(ref.namespace, ref.name);
  if (service === undefined) return invalid('BackendNotFound', `Service ${target} not found`);
  if (service.type === 'ExternalName') {
    return invalid(
      'InvalidKind',
      `Service ${target} is an ExternalName Service, which is not a supported backend`,
    );
  }
  const port = service.ports.find((candidate) => candidate.port === ref.port);
  if (port === undefined)
    return invalid('BackendNotFound', `Service ${target} has no port ${ref.port ?? '(none)'}`);
  if (port.protocol !== 'TCP') {
    return invalid('UnsupportedProtocol', `Service ${target} port ${port.port} is ${port.protocol}, not TCP`);
  }
  const endpoints = store
    .endpointsOf(service)
    .filter((endpoint) => endpoint.targetPorts[port.port] !== undefined);
  return { kind: 'service', service, port, endpoints: Object.freeze(endpoints) };
}

/** Why a request got no backend; stable codes for access logs and metrics. */
export type BackendErrorCode = 'invalid-backend' | 'no-ready-endpoints' | 'no-backend';

/** The verdict for one request: a backend (with its own filters), or the error status to answer. */
export type BackendChoice =
  | {
      readonly kind: 'forward';
      readonly ref: BackendRef;
      readonly backend: ServiceBackend;
      /** The filters declared inside this backendRef; they run only for requests sent to it. */
      readonly filters: FilterChain;
    }
  | {
      readonly kind: 'error';
      readonly status: 500 | 503;
      readonly code: BackendErrorCode;
      readonly message: string;
      readonly ref: BackendRef | undefined;
    };

/** One backendRef, resolved, with its filter chain compiled (by compile.ts). */
export interface BackendInput {
  readonly ref: BackendRef;
  readonly resolved: ResolvedBackend;
  readonly filters: FilterChain;
}

/** A rule's weighted backends; immutable, shared by every request that matches the rule. */
export interface BackendSet {
  /** Only the entries with weight > 0, in ref order. */
  readonly choices: readonly BackendChoice[];
  /** Running sums of the weights of `choices`: choice i covers [cumulative[i-1], cumulative[i]). */
  readonly cumulative: readonly number[];
  readonly total: number;
  /** What ResolvedRefs reports for this rule's refs (every ref, weight 0 included). */
  readonly problems: readonly BackendProblem[];
}

const NO_BACKEND_MESSAGE = 'the rule has no backendRefs with a weight above 0';

export function buildBackendSet(inputs: readonly BackendInput[]): BackendSet {
  const choices: BackendChoice[] = [];
  const cumulative: number[] = [];
  const problems: BackendProblem[] = [];
  let total = 0;
  for (const { ref, resolved, filters } of inputs) {
    if (resolved.kind === 'invalid') problems.push(resolved.problem);
    if (ref.weight === 0) continue;
    total += ref.weight;
    cumulative.push(total);
    choices.push(Object.freeze(verdictFor(ref, resolved, filters)));
  }
  return Object.freeze({
    choices: Object.freeze(choices),
    cumulative: Object.freeze(cumulative),
    total,
    problems: Object.freeze(problems),
  });
}

function verdictFor(ref: BackendRef, resolved: ResolvedBackend, filters: FilterChain): BackendChoice {
  if (resolved.kind === 'invalid') {
    return { kind: 'error', status: 500, code: 'invalid-backend', message: resolved.problem.message, ref };
  }
  if (resolved.endpoints.length === 0) {
    const { namespace, name } = resolved.service;
    return {
      kind: 'error',
      status: 503,
      code: 'no-ready-endpoints',
      message: `Service ${namespace}/${name} has no ready endpoints for port ${resolved.port.port}`,
      ref,
    };
  }
  return { kind: 'forward', ref, backend: resolved, filters };
}

const NO_BACKEND: BackendChoice = Object.freeze({
  kind: 'error',
  status: 500,
  code: 'no-backend',
  message: NO_BACKEND_MESSAGE,
  ref: undefined,
});

/**
 * Picks the backend for one request: share i is weight_i / sum. O(backends) (at most 16 per rule),
 * no allocation. `random` returns numbers in [0, 1) like Math.random; inject a seeded one in tests.
 */
export function chooseBackend(set: BackendSet, random: RandomSource = defaultRandom): BackendChoice {
  const { choices, cumulative, total } = set;
  if (total === 0) return NO_BACKEND;
  if (choices.length === 1) return choices[0] as BackendChoice;
  const point = random() * total;
  for (let i = 0; i < cumulative.length; i += 1) {
    if (point < (cumulative[i] as number)) return choices[i] as BackendChoice;
  }
  // Only reachable if `random` returned 1 or more; the last share takes it.
  return choices[choices.length - 1] as BackendChoice;
}
