// Calls from the CA to the Kubernetes API: each has a deadline, and "the API server answered no" is told
// apart from "no answer", which must fail the request (UNAVAILABLE), never let it through.
import {
  ApiException,
  Observable,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { WeftError, errorMessage } from '../../core/errors.js';

/**
 * Each API call the CA makes while a caller waits (TokenReview, pod reads) must answer within this; a CSR
 * then still completes inside ztunnel's and the agent's own request deadlines.
 */
export const DEFAULT_API_TIMEOUT_MS = 5_000;

/** Per-request options that abort the request after `timeoutMs` (client-node has no timeout of its own). */
export function withTimeout(timeoutMs: number): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(AbortSignal.timeout(timeoutMs));
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** The HTTP status of an error the API server answered with; undefined when it did not answer. */
export function apiStatusCode(err: unknown): number | undefined {
  return err instanceof ApiException ? (err as ApiException<unknown>).code : undefined;
}

/** A short reason: `HTTP 403: secrets "x" is forbidden…` or the network error, not the client's dump. */
export function apiErrorReason(err: unknown): string {
  if (err instanceof ApiException) {
    const { code, body } = err as ApiException<unknown>;
    return `HTTP ${code}: ${statusMessage(body).slice(0, 300)}`;
  }
  if (err instanceof Error && err.name === 'AbortError') return 'no answer in time';
  return errorMessage(err);
}

/** ERR_CA_UNAVAILABLE for a call that got no usable answer: the caller should retry later. */
export function apiUnavailable(what: string, err: unknown, peer?: string): WeftError {
  return new WeftError(
    'ERR_CA_UNAVAILABLE',
    `cannot ${what}: the Kubernetes API failed (${apiErrorReason(err)})`,
    peer === undefined ? {} : { peer },
    err,
  );
}

/** The message of a Status body (client-node hands error bodies over as text). */
function statusMessage(body: unknown): string {
  let parsed = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body;
    }
  }
  if (typeof parsed === 'object' && parsed !== null && 'message' in parsed) return String(parsed.message);
  return String(body);
}
