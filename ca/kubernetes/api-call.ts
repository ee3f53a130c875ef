// The CA's calls to the Kubernetes API: each has a deadline, and "no answer" must fail the request
// (UNAVAILABLE), never let it through.
import { WeftError } from '../../core/errors.js';
import { apiErrorReason } from '../../core/kubernetes/api-call.js';

export { apiErrorReason, apiStatusCode, withTimeout } from '../../core/kubernetes/api-call.js';

/**
 * Each API call the CA makes while a caller waits (TokenReview, pod reads) must answer within this; a CSR
 * then still completes inside ztunnel's and the agent's own request deadlines.
 */
export const DEFAULT_API_TIMEOUT_MS = 5_000;

/** ERR_CA_UNAVAILABLE for a call that got no usable answer: the caller should retry later. */
export function apiUnavailable(what: string, err: unknown, peer?: string): WeftError {
  return new WeftError(
    'ERR_CA_UNAVAILABLE',
    `cannot ${what}: the Kubernetes API failed (${apiErrorReason(err)})`,
    peer === undefined ? {} : { peer },
    err,
  );
}
