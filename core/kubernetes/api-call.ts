// Calls to the Kubernetes API through @kubernetes/client-node, shared by every component: a deadline
// per request (client-node has none of its own), and errors told apart — "the API server answered no"
// (its HTTP status) from "no answer".
import {
  ApiException,
  Observable,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { errorMessage } from '../errors.js';

/** Per-request options that abort the request with `signal`. */
export function withSignal(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(signal);
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** Per-request options that abort the request after `timeoutMs`. */
export function withTimeout(timeoutMs: number): ConfigurationOptions<ObservableMiddleware> {
  return withSignal(AbortSignal.timeout(timeoutMs));
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
