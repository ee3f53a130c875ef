// Checks on one HTTPRoute rule that the converter (which applies the CRD's CEL rules) does not make:
// what Weft cannot serve. A rule that fails is dropped from the routing table; the rest of its route
// keeps serving, and status.ts reports the drop (PartiallyInvalid, or Accepted=False if nothing is left).
import type { RouteFilter, RouteRule } from '../../core/model/index.js';

export type RuleProblemReason = 'UnsupportedValue' | 'IncompatibleFilters';

export interface RuleProblem {
  readonly reason: RuleProblemReason;
  /** Names the field: `spec.rules[1].matches[0].path.value: …`. */
  readonly message: string;
}

/**
 * Why Weft cannot serve the rule at `index`, or undefined. Regexes must stay within the RE2 dialect
 * (the spec's usual engine, and the one users port patterns from): JavaScript-only lookaround and
 * backreferences are refused rather than silently meaning something else elsewhere.
 */
export function checkRule(rule: RouteRule, index: number): RuleProblem | undefined {
  const field = `spec.rules[${index}]`;
  for (const [m, match] of rule.matches.entries()) {
    const at = `${field}.matches[${m}]`;
    if (match.path.type === 'RegularExpression') {
      const problem = regexProblem(match.path.value);
      if (problem !== undefined) return unsupported(`${at}.path.value`, problem);
    }
    for (const [kind, list] of [
      ['headers', match.headers],
      ['queryParams', match.queryParams],
    ] as const) {
      for (const [i, value] of list.entries()) {
        if (value.type !== 'RegularExpression') continue;
        const problem = regexProblem(value.value);
        if (problem !== undefined) return unsupported(`${at}.${kind}[${i}].value`, problem);
      }
    }
  }
  const ruleFilters = filterProblem(rule.filters, `${field}.filters`);
  if (ruleFilters !== undefined) return ruleFilters;
  const ruleRewrites = rule.filters.some((filter) => filter.type === 'URLRewrite');
  for (const [b, backend] of rule.backendRefs.entries()) {
    const at = `${field}.backendRefs[${b}].filters`;
    const own = filterProblem(backend.filters, at);
    if (own !== undefined) return own;
    if (ruleRewrites && backend.filters.some((filter) => filter.type === 'RequestRedirect')) {
      return incompatible(at, 'a RequestRedirect cannot follow the rule-level URLRewrite');
    }
  }
  return undefined;
}

function filterProblem(filters: readonly RouteFilter[], field: string): RuleProblem | undefined {
  const redirects = filters.some((filter) => filter.type === 'RequestRedirect');
  if (redirects && filters.some((filter) => filter.type === 'RequestMirror')) {
    return incompatible(
      field,
      'RequestMirror cannot be combined with RequestRedirect (no request is sent on)',
    );
  }
  return undefined;
}

function unsupported(field: string, problem: string): RuleProblem {
  return { reason: 'UnsupportedValue', message: `${field}: ${problem}` };
}

function incompatible(field: string, problem: string): RuleProblem {
  return { reason: 'IncompatibleFilters', message: `${field}: ${problem}` };
}

/** A JavaScript regex construct outside RE2, or undefined. Scans once, honouring escapes and classes. */
export function regexProblem(pattern: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1];
      if (!inClass && next !== undefined && next >= '1' && next <= '9') {
        return 'backreferences are not supported (RE2 regular expressions)';
      }
      if (!inClass && next === 'k' && pattern[i + 2] === '<') {
        return 'named backreferences are not supported (RE2 regular expressions)';
      }
      i += 1;
    } else if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') {
      inClass = true;
    } else if (c === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i + 2, i + 4);
      if (rest.startsWith('=') || rest.startsWith('!') || rest === '<=' || rest === '<!') {
        return 'lookahead and lookbehind are not supported (RE2 regular expressions)';
      }
    }
  }
  return undefined;
}
