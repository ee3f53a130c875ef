// HTTPRoute status as this waypoint sees it (gateway-api.md §11): one entry per parentRef the waypoint
// serves, with Accepted, ResolvedRefs and, when some rules were dropped, PartiallyInvalid. Computed from
// the same analysis the routing table is built from, so what status says is what the table does:
// - a parent that does not attach (NoMatchingParent, NotAllowedByListeners, NoMatchingListenerHostname)
//   gets Accepted=False and no traffic;
// - an invalid rule (UnsupportedValue, IncompatibleFilters) is dropped while the other rules serve:
//   Accepted=True plus PartiallyInvalid=True "Dropped Rule…"; with no valid rule left, Accepted=False;
// - an unresolved backendRef (BackendNotFound, InvalidKind, RefNotPermitted, UnsupportedProtocol) keeps
//   the route Accepted, gives ResolvedRefs=False, and its share of traffic answers 500.
// Weft does not model metadata.generation, so conditions carry no observedGeneration.
import type { ParentRef } from '../../core/model/index.js';
import type { ConfigStore } from '../../core/store.js';
import { analyzeRoutes, type ParentOutcome, type RouteAnalysis } from './analysis.js';
import type { RouteMode } from './backends.js';
import type { WaypointRef } from './parents.js';

/** Istio's controller name for waypoints (GatewayClass istio-waypoint), so tooling finds our entries. */
export const WAYPOINT_CONTROLLER_NAME = 'istio.io/mesh-controller';

export type RouteConditionType = 'Accepted' | 'ResolvedRefs' | 'PartiallyInvalid';

export interface RouteCondition {
  readonly type: RouteConditionType;
  readonly status: 'True' | 'False';
  /** Accepted, NoMatchingParent, UnsupportedValue, ResolvedRefs, BackendNotFound, … (apis/v1 reasons). */
  readonly reason: string;
  readonly message: string;
}

export interface RouteParentStatus {
  readonly parentRef: ParentRef;
  readonly controllerName: string;
  readonly conditions: readonly RouteCondition[];
}

export interface RouteStatus {
  readonly namespace: string;
  readonly name: string;
  readonly parents: readonly RouteParentStatus[];
}

/** The status of every route with a parent this waypoint serves, oldest route first. */
export function routeStatuses(store: ConfigStore, waypoint: WaypointRef): readonly RouteStatus[] {
  return analyzeRoutes(store, waypoint).map(buildRouteStatus);
}

export function buildRouteStatus(analysis: RouteAnalysis): RouteStatus {
  return {
    namespace: analysis.route.namespace,
    name: analysis.route.name,
    parents: analysis.parents.map((parent) => ({
      parentRef: parent.ref,
      controllerName: WAYPOINT_CONTROLLER_NAME,
      conditions: parentConditions(analysis, parent),
    })),
  };
}

function parentConditions(analysis: RouteAnalysis, parent: ParentOutcome): readonly RouteCondition[] {
  const { attachment } = parent;
  if (attachment.kind === 'rejected') {
    return [{ type: 'Accepted', status: 'False', reason: attachment.reason, message: attachment.message }];
  }
  const conditions: RouteCondition[] = [];
  const dropped = analysis.ruleProblems.filter((problem) => problem !== undefined);
  const first = dropped[0];
  if (first !== undefined && dropped.length === analysis.ruleProblems.length) {
    conditions.push({
      type: 'Accepted',
      status: 'False',
      reason: first.reason,
      message: `No valid rule: ${dropped.map((problem) => problem.message).join('; ')}`,
    });
  } else {
    conditions.push({ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'Route was valid' });
    if (first !== undefined) {
      conditions.push({
        type: 'PartiallyInvalid',
        status: 'True',
        reason: first.reason,
        message: `Dropped Rule(s): ${dropped.map((problem) => problem.message).join('; ')}`,
      });
    }
  }
  const mode: RouteMode = attachment.kind === 'service' ? 'mesh' : 'gateway';
  const refProblems = (analysis.rules.get(mode) ?? []).flatMap((rule) => rule?.problems ?? []);
  const firstRef = refProblems[0];
  conditions.push(
    firstRef === undefined
      ? { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'All references resolved' }
      : {
          type: 'ResolvedRefs',
          status: 'False',
          reason: firstRef.reason,
          message: refProblems.map((problem) => problem.message).join('; '),
        },
  );
  return conditions;
}

/** True iff the parent attached and at least one rule serves: the route takes traffic through it. */
export function parentServes(analysis: RouteAnalysis, parent: ParentOutcome): boolean {
  return (
    parent.attachment.kind !== 'rejected' && analysis.ruleProblems.some((problem) => problem === undefined)
  );
}
