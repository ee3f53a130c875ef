// One pass over the store for one waypoint: every HTTPRoute with a parentRef this waypoint serves, how
// each of those parentRefs attaches, which rules are valid, and each valid rule compiled for the mode
// (mesh or Gateway) its parents need. compile.ts builds the table from it; status.ts the conditions.
import type { BackendObjectRef, HttpRoute, ParentRef, RouteRule } from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
import {
  buildBackendSet,
  resolveBackendRef,
  type BackendProblem,
  type BackendSet,
  type RouteMode,
} from './backends.js';
import { compileFilterChain, rulePolicy, type FilterChain, type RulePolicy } from './filters.js';
import { compareRoutes } from './match.js';
import { attachParent, type ParentAttachment, type WaypointRef } from './parents.js';
import { checkRule, type RuleProblem } from './rule-check.js';

/** One rule, ready to serve: everything a matched request needs, computed once. */
export interface CompiledRule {
  readonly route: HttpRoute;
  /** Index in `route.spec.rules`. */
  readonly index: number;
  readonly rule: RouteRule;
  /** For logs and explain: `ns/route` plus the rule's name or `rules[i]`. */
  readonly id: string;
  readonly mode: RouteMode;
  /** Rule-level filters, in list order. */
  readonly filters: FilterChain;
  readonly backends: BackendSet;
  readonly policy: RulePolicy;
  /** Every unresolved ref of the rule (backends, backend filters' and rule filters' mirrors). */
  readonly problems: readonly BackendProblem[];
}

export interface ParentOutcome {
  readonly ref: ParentRef;
  /** Index in `route.spec.parentRefs`. */
  readonly index: number;
  readonly attachment: ParentAttachment;
}

export interface RouteAnalysis {
  readonly route: HttpRoute;
  /** Only the parentRefs this waypoint serves, in spec order. */
  readonly parents: readonly ParentOutcome[];
  /** Per rule: why it is dropped, or undefined when it is valid. */
  readonly ruleProblems: readonly (RuleProblem | undefined)[];
  /** Per mode the accepted parents need: per rule, the compiled rule (undefined when dropped). */
  readonly rules: ReadonlyMap<RouteMode, readonly (CompiledRule | undefined)[]>;
}

/** Routes (oldest first, then namespace/name) that name a parent of this waypoint. */
export function analyzeRoutes(store: ConfigStore, waypoint: WaypointRef): readonly RouteAnalysis[] {
  const routes = [...store.allHttpRoutes()].sort(compareRoutes);
  const analyses: RouteAnalysis[] = [];
  for (const route of routes) {
    const parents: ParentOutcome[] = [];
    route.parentRefs.forEach((ref, index) => {
      const attachment = attachParent(store, waypoint, route, ref, index);
      if (attachment !== undefined) parents.push({ ref, index, attachment });
    });
    if (parents.length === 0) continue;
    const ruleProblems = route.rules.map((rule, index) => checkRule(rule, index));
    const modes = new Set<RouteMode>();
    for (const { attachment } of parents) {
      if (attachment.kind === 'service') modes.add('mesh');
      if (attachment.kind === 'gateway') modes.add('gateway');
    }
    const rules = new Map<RouteMode, readonly (CompiledRule | undefined)[]>();
    for (const mode of modes) {
      rules.set(
        mode,
        route.rules.map((_, index) =>
          ruleProblems[index] === undefined ? compileRule(store, route, index, mode) : undefined,
        ),
      );
    }
    analyses.push({ route, parents, ruleProblems, rules });
  }
  return analyses;
}

export function compileRule(
  store: ConfigStore,
  route: HttpRoute,
  index: number,
  mode: RouteMode,
): CompiledRule {
  const rule = route.rules[index] as RouteRule;
  const field = `spec.rules[${index}]`;
  const resolveMirror = (ref: BackendObjectRef, refField: string) =>
    resolveBackendRef(store, ref, route.namespace, mode, refField);
  const only = rule.matches.length === 1 ? rule.matches[0] : undefined;
  const matchedPrefix = only?.path.type === 'PathPrefix' ? only.path.value : undefined;
  const filters = compileFilterChain(rule.filters, {
    matchedPrefix,
    resolveMirror,
    field: `${field}.filters`,
  });
  const inputs = rule.backendRefs.map((ref, b) => ({
    ref,
    resolved: resolveBackendRef(store, ref, route.namespace, mode, `${field}.backendRefs[${b}]`),
    filters: compileFilterChain(ref.filters, {
      matchedPrefix,
      resolveMirror,
      field: `${field}.backendRefs[${b}].filters`,
    }),
  }));
  const backends = buildBackendSet(inputs);
  const problems = [
    ...backends.problems,
    ...filters.problems,
    ...inputs.flatMap((input) => input.filters.problems),
  ];
  const label = rule.name === undefined ? `rules[${index}]` : rule.name;
  return Object.freeze({
    route,
    index,
    rule,
    id: `${route.namespace}/${route.name}/${label}`,
    mode,
    filters,
    backends,
    policy: rulePolicy(rule),
    problems: Object.freeze(problems),
  });
}
