// Decide, then do: everything the routing engine decides for one request, as one plain value the HTTP
// layer carries out. Order (gateway-api.md §5, §6): select the rule; run its filters in list order (a
// redirect or CORS preflight answers here); choose a backend by weight (an invalid share answers 500, a
// share without ready endpoints 503, no backend 500); run that backendRef's own filters.
import type { BackendChoice, BackendErrorCode } from './backends.js';
import { chooseBackend } from './backends.js';
import type { MatchedRoute, RoutingTable } from './compile.js';
import {
  NO_EDITS,
  newEditRecorder,
  runFilterChain,
  type EditRecorder,
  type FilterRequest,
  type RequestEdits,
  type RulePolicy,
} from './filters.js';
import type { HeaderEdit } from './headers.js';
import { defaultRandom, type RandomSource } from './random.js';
import { headerValue, type RouteRequest } from './request.js';
import { selectRoute } from './select.js';

export type RequestPlan =
  /** No route applies: forward to the dialled destination unchanged. */
  | { readonly kind: 'passthrough' }
  /** Answer locally; `edits.responseHeaders` (if any) apply after `headers`. */
  | {
      readonly kind: 'respond';
      readonly status: number;
      readonly cause: 'not-found' | 'redirect' | 'cors-preflight' | BackendErrorCode;
      readonly headers: readonly HeaderEdit[];
      readonly selection: MatchedRoute | undefined;
      readonly edits: RequestEdits | undefined;
      /** For logs: why (the backend error's message, or the redirect's rule). */
      readonly message: string;
    }
  | {
      readonly kind: 'forward';
      readonly selection: MatchedRoute;
      readonly backend: Extract<BackendChoice, { kind: 'forward' }>;
      /** Header edits (host included), rewritten path and mirrors; shared and empty when nothing applies. */
      readonly edits: RequestEdits;
      readonly policy: RulePolicy;
    };

export interface PlanOptions {
  /** The scheme the client used; "http" inside the mesh. */
  readonly scheme?: 'http' | 'https';
  readonly random?: RandomSource;
}

const PASSTHROUGH_PLAN: RequestPlan = Object.freeze({ kind: 'passthrough' });
const NOT_FOUND_PLAN: RequestPlan = Object.freeze({
  kind: 'respond',
  status: 404,
  cause: 'not-found',
  headers: Object.freeze([]),
  selection: undefined,
  edits: undefined,
  message: 'no route rule matched',
});

export function planRequest(
  table: RoutingTable,
  request: RouteRequest,
  options: PlanOptions = {},
): RequestPlan {
  const selection = selectRoute(table, request);
  if (selection.kind === 'passthrough') return PASSTHROUGH_PLAN;
  if (selection.kind === 'not-found') return NOT_FOUND_PLAN;
  const random = options.random ?? defaultRandom;
  const { rule } = selection;
  let edits: EditRecorder | undefined;
  let filterRequest: FilterRequest | undefined;
  if (rule.filters.steps.length > 0) {
    edits = newEditRecorder();
    filterRequest = toFilterRequest(request, options.scheme ?? 'http');
    const local = runFilterChain(rule.filters, filterRequest, edits, random);
    if (local !== undefined) {
      return respond(local.status, local.cause, local.headers, selection, edits, `answered by ${rule.id}`);
    }
  }
  const choice = chooseBackend(rule.backends, random);
  if (choice.kind === 'error') {
    return respond(choice.status, choice.code, [], selection, edits, choice.message);
  }
  if (choice.filters.steps.length > 0) {
    edits ??= newEditRecorder();
    filterRequest ??= toFilterRequest(request, options.scheme ?? 'http');
    const local = runFilterChain(choice.filters, filterRequest, edits, random);
    if (local !== undefined) {
      const message = `answered by a backendRef filter of ${rule.id}`;
      return respond(local.status, local.cause, local.headers, selection, edits, message);
    }
  }
  return { kind: 'forward', selection, backend: choice, edits: edits ?? NO_EDITS, policy: rule.policy };
}

function respond(
  status: number,
  cause: Extract<RequestPlan, { kind: 'respond' }>['cause'],
  headers: readonly HeaderEdit[],
  selection: MatchedRoute,
  edits: RequestEdits | undefined,
  message: string,
): RequestPlan {
  return { kind: 'respond', status, cause, headers, selection, edits, message };
}

function toFilterRequest(request: RouteRequest, scheme: 'http' | 'https'): FilterRequest {
  const query = request.query.startsWith('?') ? request.query.slice(1) : request.query;
  return {
    scheme,
    method: request.method,
    authority: headerValue(request.headers, 'host') ?? dialledAuthority(request),
    path: request.path,
    query,
    headers: request.headers,
    port: request.dialled.port,
  };
}

/** For a request without Host (HTTP/1.0): the address it was sent to. */
function dialledAuthority(request: RouteRequest): string {
  const { ip, port } = request.dialled;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
