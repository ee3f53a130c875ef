// Hostnames of routes attached to the waypoint Gateway (gateway-api.md §4): intersection with the
// listener's hostname at attach time, and the per-request lookup by Host header, exact before the
// longest wildcard before the catch-all. Mesh (Service-parent) routes never look at hostnames.

/** The catch-all: a route and listener that both leave hostnames unset accept any Host. */
export const ANY_HOST = '*';

/** True iff wildcard `*.suffix` covers `host` (one or more labels before `.suffix`; `host` may be a wildcard). */
function wildcardCovers(wildcard: string, host: string): boolean {
  const suffix = wildcard.slice(1); // ".suffix"
  return host.length > suffix.length && host.endsWith(suffix);
}

/**
 * The hostnames a route serves on a listener: the route's own where they fit the listener's, the
 * listener's where a route wildcard covers it, all of the route's if the listener has none, the
 * listener's if the route has none, ANY_HOST if neither has any. Empty: no intersection.
 */
export function intersectHostnames(
  listener: string | undefined,
  route: readonly string[],
): readonly string[] {
  if (route.length === 0) return [listener ?? ANY_HOST];
  const lowered = route.map((host) => host.toLowerCase());
  if (listener === undefined) return lowered;
  const listenerHost = listener.toLowerCase();
  const result: string[] = [];
  for (const host of lowered) {
    if (host === listenerHost) result.push(host);
    else if (listenerHost.startsWith('*.') && wildcardCovers(listenerHost, host)) result.push(host);
    else if (host.startsWith('*.') && wildcardCovers(host, listenerHost)) result.push(listenerHost);
  }
  return [...new Set(result)];
}

/** Routes by Host header; `T` is what one hostname leads to (a compiled match set). */
export interface HostRouter<T> {
  readonly exact: ReadonlyMap<string, T>;
  /** Longest suffix first; `suffix` is ".example.com" for `*.example.com`. */
  readonly wildcards: readonly { readonly suffix: string; readonly value: T }[];
  readonly any: T | undefined;
}

export function buildHostRouter<T>(byHostname: ReadonlyMap<string, T>): HostRouter<T> {
  const exact = new Map<string, T>();
  const wildcards: { suffix: string; value: T }[] = [];
  let any: T | undefined;
  for (const [hostname, value] of byHostname) {
    if (hostname === ANY_HOST) any = value;
    else if (hostname.startsWith('*.')) wildcards.push({ suffix: hostname.slice(1), value });
    else exact.set(hostname, value);
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length || (a.suffix < b.suffix ? -1 : 1));
  return { exact, wildcards, any };
}

/**
 * What a Host (already port-less and lower-case, see request.ts `hostOf`) leads to. Like Envoy's virtual
 * hosts, the most specific hostname wins outright: its routes are the only candidates, and a request
 * none of them matches is a 404 even if a less specific hostname's routes would have matched.
 */
export function lookupHost<T>(router: HostRouter<T>, host: string): T | undefined {
  const exact = router.exact.get(host);
  if (exact !== undefined) return exact;
  for (const { suffix, value } of router.wildcards) {
    if (host.length > suffix.length && host.endsWith(suffix)) return value;
  }
  return router.any;
}
