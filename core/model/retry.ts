// The HTTPRoute rule `retry` stanza (GEP-1731, Experimental channel), defaults left to the runtime.
// Kept beside route.ts until RouteRule carries it: proxy/routing/filters.ts reads it when present.

export interface RouteRetry {
  /** HTTP statuses (400..599) that trigger a retry; a status not listed is passed straight through. */
  readonly codes: readonly number[];
  /** The most retries after the first try (`attempts: 3` allows 4 tries); undefined: implementation's choice. */
  readonly attempts: number | undefined;
  /** The least wait between tries, in ms; undefined: implementation's choice. */
  readonly backoffMs: number | undefined;
}
