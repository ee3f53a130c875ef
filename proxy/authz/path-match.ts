// AuthorizationPolicy `paths` / `notPaths` values, compiled once per config change (authz.md §6). They
// are matched against the normalized path without its query (proxy/http/normalize.ts), case-sensitively.
//
// - Without a template: Istio's string forms (core/authz/string-match.ts). `*` alone is presence, so any
//   path; `/api/*` is the prefix `/api/` (`/api` itself does not match); `*.png` a suffix; else exact.
// - With `{*}` or `{**}` (Envoy's uri_template, as istiod converts it): each is a whole segment.
//   `{*}` matches exactly one non-empty segment; `{**}` matches the rest of the path, zero or more
//   segments, and must be the last segment of the template. `/api/{**}` matches `/api/` and `/api/a/b`
//   but not `/api` (Envoy's regex is `/api/` followed by anything). The other segments are literals.
//
// Deviation from Envoy: Envoy's globs match only RFC 3986 pchar characters minus `*` and `=`, so its
// `{*}` does not match a segment holding `=` or `*`; a DENY on `/admin/{*}` would then miss
// `/admin/a=b`. Here `{*}` matches any segment and `{**}` anything, so a template never misses a path
// that Envoy's intent covers. A template istiod would reject (`{**}` not last, `{` or `}` elsewhere, a
// bare `*` next to a template, a template inside a segment) is refused at compile time with a reason.
import { compileStringMatch, stringMatches, type StringMatcher } from '../../core/authz/string-match.js';

const MATCH_ONE = '{*}';
const MATCH_ANY = '{**}';

/** One compiled `paths` value. Both kinds have both fields, so match sites stay monomorphic. */
export interface PathMatcher {
  /** Set for a template; `matcher` is then unused. */
  readonly template: RegExp | undefined;
  readonly matcher: StringMatcher;
}

export type PathCompileResult =
  { readonly ok: true; readonly matcher: PathMatcher } | { readonly ok: false; readonly reason: string };

const UNUSED: StringMatcher = compileStringMatch('*');

export function containsPathTemplate(value: string): boolean {
  return value.includes(MATCH_ONE) || value.includes(MATCH_ANY);
}

export function compilePathMatch(value: string): PathCompileResult {
  if (!containsPathTemplate(value)) {
    return { ok: true, matcher: Object.freeze({ template: undefined, matcher: compileStringMatch(value) }) };
  }
  if (!value.startsWith('/')) return { ok: false, reason: `path template ${value} must start with "/"` };
  const segments = value.slice(1).split('/');
  let pattern = '';
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    pattern += '/';
    if (segment === MATCH_ONE) {
      pattern += '[^/]+';
    } else if (segment === MATCH_ANY) {
      if (i !== segments.length - 1) {
        return { ok: false, reason: `path template ${value}: {**} must be the last segment` };
      }
      pattern += '.*';
    } else if (/[{}*]/.test(segment)) {
      return {
        ok: false,
        reason: `path template ${value}: segment ${JSON.stringify(segment)} mixes a template with other text`,
      };
    } else {
      pattern += escapeRegExp(segment);
    }
  }
  return { ok: true, matcher: Object.freeze({ template: new RegExp(`^${pattern}$`), matcher: UNUSED }) };
}

export function pathMatches(matcher: PathMatcher, path: string): boolean {
  const template = matcher.template;
  return template === undefined ? stringMatches(matcher.matcher, path) : template.test(path);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
