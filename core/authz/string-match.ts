// Istio's string patterns, compiled once per config change (authz.md §2): the identity attributes both
// enforcers check (principals, namespaces, source.principal / source.namespace when-values) and, at the
// waypoint, the HTTP ones (methods, paths, hosts after lower-casing, header values, connection.sni).
//
// The same four forms istiod sends to ztunnel (`stringToMatch`): exactly "*" is presence (the value must
// be non-empty), a leading "*" is a suffix match, a trailing "*" a prefix match, anything else is exact.
// A "*" anywhere else is a literal character. Matching is case-sensitive.

export type StringMatchKind = 'exact' | 'prefix' | 'suffix' | 'presence';

/** One compiled pattern. Every kind has the same two fields so match sites stay monomorphic. */
export interface StringMatcher {
  readonly kind: StringMatchKind;
  /** The text to compare ("" for presence). */
  readonly value: string;
}

const PRESENCE: StringMatcher = Object.freeze({ kind: 'presence', value: '' });

export function compileStringMatch(pattern: string): StringMatcher {
  if (pattern === '*') return PRESENCE;
  // The suffix form wins for "*a*" (as in istiod): it is a suffix match for the literal "a*".
  if (pattern.startsWith('*')) return Object.freeze({ kind: 'suffix', value: pattern.slice(1) });
  if (pattern.endsWith('*')) return Object.freeze({ kind: 'prefix', value: pattern.slice(0, -1) });
  return Object.freeze({ kind: 'exact', value: pattern });
}

export function stringMatches(matcher: StringMatcher, value: string): boolean {
  switch (matcher.kind) {
    case 'exact':
      return value === matcher.value;
    case 'prefix':
      return value.startsWith(matcher.value);
    case 'suffix':
      return value.endsWith(matcher.value);
    case 'presence':
      return value !== '';
  }
}
