// The waypoint's HTTPRoute engine: pure modules, no I/O. Compile a RoutingTable from the store once per
// config change (`compileRoutingTable`), then per request either `selectRoute` (which rule) or
// `planRequest` (rule, filters, backend: the whole decision as one value for the HTTP layer to carry
// out). `routeStatuses` gives the route conditions `weft waypoint status` shows.
//
//   parents.ts    which parentRefs attach to this waypoint (Service bound by istio.io/use-waypoint, or
//                 the waypoint Gateway), and why not
//   rule-check.ts rules Weft cannot serve (dropped, reported)
//   analysis.ts   one pass over the store: attachments, rule checks, rules compiled per mode
//   match.ts      a match as a predicate; §3 precedence        hostnames.ts  Host routing (Gateway routes)
//   compile.ts    the table                                    select.ts     the per-request lookup
//   backends.ts   ref resolution and weighted choice           filters.ts    filters, timeouts, retries
//   headers.ts    header edits                                 cors.ts       the CORS filter
//   plan.ts       select + filters + backend as one plan       status.ts     route conditions
//
// Decisions where the Gateway API leaves the choice to us (gateway-api.md):
// - RegularExpression (path, header, query) is a full match, anchored `^(?:…)$` like Envoy's safe_regex,
//   and must stay within RE2 (no lookaround, no backreferences: the rule is dropped, UnsupportedValue).
//   Regex paths rank after every PathPrefix (Istio's order), longer pattern first.
// - "Most characters" for PathPrefix counts the value as configured (`/abc/` outranks `/abc`).
// - Repeated request headers are matched joined with ", " (Cookie with "; "); a repeated query
//   parameter matches on its first value; query values are percent-decoded, names compared as written.
// - Routes attached to the waypoint Gateway apply when no Service route set applies to the request,
//   by Host: exact hostname, else the longest wildcard, else routes without hostnames; the most specific
//   hostname's routes are the only candidates (a miss there is 404). Listener allowedRoutes is not
//   modelled: the default (same namespace) applies. Cross-namespace backendRefs of Gateway routes are
//   RefNotPermitted (no ReferenceGrant model); mesh routes need no grant (GEP-1294).
// - All-zero weights or no backendRefs: 500. An ExternalName backend is InvalidKind; a non-TCP port
//   UnsupportedProtocol; a port the Service lacks BackendNotFound.
// - A Service parent that is headless or has no TCP port matching `port`/`sectionName` is
//   NoMatchingParent; a missing Service is reported only when its namespace is bound to this waypoint.
// - A route none of whose rules is valid is not attached (its Service keeps passthrough).
// - RequestMirror with RequestRedirect in one list, and a backendRef RequestRedirect under a rule
//   URLRewrite, are IncompatibleFilters. Mirrors are sampled with the injected random; 0% and 100% draw
//   nothing.
// - Redirects keep the query string; the Location leaves out 80 for http and 443 for https; with neither
//   scheme nor port set, the port is the dialled Service port. Rewrites and redirects compute from the
//   original path; a later rewrite replaces an earlier one.
// - A CORS preflight is answered 200 (with CORS headers only if the origin is allowed); a lone `*`
//   origin without credentials answers `*`, otherwise the request's Origin is echoed.
// - Timeouts: unset or "0s" is no limit. Retries: unset attempts 2, unset backoff 25 ms; a retry stanza
//   also retries connection errors.
// - Status: controllerName istio.io/mesh-controller; no observedGeneration (not modelled).
export { compileRoutingTable } from './compile.js';
export type {
  CompiledMatch,
  CompiledRule,
  Frontend,
  MatchedRoute,
  MatchSet,
  RouteParent,
  RoutingTable,
  WaypointRef,
} from './compile.js';
export { NOT_FOUND, PASSTHROUGH, selectRoute, type RouteSelection } from './select.js';
export { planRequest, type PlanOptions, type RequestPlan } from './plan.js';
export {
  buildBackendSet,
  chooseBackend,
  resolveBackendRef,
  type BackendChoice,
  type BackendErrorCode,
  type BackendProblem,
  type BackendSet,
  type ResolvedBackend,
  type RouteMode,
  type ServiceBackend,
} from './backends.js';
export {
  DEFAULT_RETRY_ATTEMPTS,
  DEFAULT_RETRY_BACKOFF_MS,
  EMPTY_CHAIN,
  NO_EDITS,
  compileFilterChain,
  modifiedPath,
  newEditRecorder,
  redirectLocation,
  replacePrefix,
  rulePolicy,
  runFilterChain,
  type ChainFilter,
  type EditRecorder,
  type FilterChain,
  type FilterRequest,
  type LocalResponse,
  type MirrorTarget,
  type RequestEdits,
  type RetryPolicy,
  type RulePolicy,
} from './filters.js';
export { applyHeaderEdits, compileHeaderModifier, type HeaderEdit } from './headers.js';
export { compileCors, evaluateCors, type CompiledCors, type CorsOutcome } from './cors.js';
export {
  WAYPOINT_CONTROLLER_NAME,
  buildRouteStatus,
  routeStatuses,
  type RouteCondition,
  type RouteConditionType,
  type RouteParentStatus,
  type RouteStatus,
} from './status.js';
export { defaultRandom, seededRandom, type RandomSource } from './random.js';
export type { DialledAddress, HeaderFieldValue, RequestHeaders, RouteRequest } from './request.js';
