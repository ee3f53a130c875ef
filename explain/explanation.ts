// What `weft explain` answers: the path a flow takes, each point on it that decides (source agent,
// waypoint, destination agent) with the policies it evaluates in order, and the verdict. This is also the
// `-o json` output, so field names are chosen once here; the verdict fields use the flow events' words
// (core/flows/event.ts), so a script can hold an explanation next to what `weft observe` reports.
import type { FlowPath, FlowVerdict } from '../core/flows/event.js';
import type { PolicyRuleMatch } from '../core/authz/verdict.js';
import type { AuthorizationAction } from '../core/model/authz.js';
import type { EffectiveMtlsMode, MtlsMode } from '../core/model/peer-auth.js';

/** Where a verdict is made; `none` when no part of the mesh is on the path. */
export type DecisionPoint = 'source agent' | 'waypoint' | 'destination agent' | 'none';

export interface NamespacedName {
  readonly namespace: string;
  readonly name: string;
}

/** The client as explained. */
export interface ExplainedSource {
  readonly ip: string;
  readonly namespace?: string;
  readonly pod?: string;
  /** The SPIFFE ID it proves; absent for plaintext. */
  readonly identity?: string;
  /** Whether a node agent captures its traffic (an enrolled pod, or a mesh identity). */
  readonly captured: boolean;
  /** The source pod's node, when known. */
  readonly node?: string;
}

/** What the client addressed. */
export interface ExplainedDestination {
  readonly ip: string;
  readonly port: number;
  readonly service?: NamespacedName & { readonly host: string };
  /** The pod addressed directly, when it is one. */
  readonly namespace?: string;
  readonly pod?: string;
}

/** The pod (or address) the flow ends at. */
export interface ExplainedEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly namespace?: string;
  readonly pod?: string;
  /** Whether the mesh delivers to it (an enrolled pod: its node agent enforces L4 policy). */
  readonly inMesh: boolean;
}

/** One AuthorizationPolicy in a decision, in evaluation order. */
export interface PolicyEvaluation {
  /** `namespace/name`. */
  readonly policy: string;
  readonly action: AuthorizationAction;
  /** `istio.io/dry-run`: evaluated and reported, never enforced. */
  readonly dryRun: boolean;
  /** Whether any rule matched. */
  readonly matched: boolean;
  /** The first rule that matched (its index in `spec.rules`). */
  readonly rule?: number;
  /** This policy's rule is the step's verdict. */
  readonly decides: boolean;
  /** At a waypoint: the targetRef that binds it (Gateway, GatewayClass or Service). */
  readonly attachedVia?: string;
  /** What the enforcing side could not apply as written. */
  readonly warnings: readonly string[];
}

/** A PeerAuthentication that governs the destination workload, one per level. */
export interface PeerAuthenticationLevel {
  readonly level: 'mesh' | 'namespace' | 'workload';
  /** `namespace/name`. */
  readonly policy: string;
  readonly mode: MtlsMode;
  /** The port-level mode for the destination port, when the policy sets one. */
  readonly portMode?: MtlsMode;
}

export interface PeerAuthenticationCheck {
  /** The policies that set the mode, mesh first (empty: Istio's default, PERMISSIVE). */
  readonly levels: readonly PeerAuthenticationLevel[];
  /** The effective mode for the destination port. */
  readonly mode: EffectiveMtlsMode;
  /** Whether that mode requires a peer identity (STRICT). */
  readonly identityRequired: boolean;
  /** Whether the connection has one (arrived over HBONE). */
  readonly peerIdentity: boolean;
  /** It refuses this connection: plaintext on a STRICT port. */
  readonly decides: boolean;
  /** The DENY policy istiod would generate for STRICT, as the data plane names the denial. */
  readonly policy: string;
}

interface StepVerdict {
  /** ALLOWED also when the step only passes the flow on to the next one. */
  readonly verdict: FlowVerdict;
  /** The deciding policy, `namespace/name`. */
  readonly policy?: string;
  /** The deciding rule's index in the policy's `spec.rules`. */
  readonly rule?: number;
  readonly reason: string;
}

/** The client's node agent: how it plans the connection (agent/outbound.ts planOutbound). */
export interface SourceAgentStep extends StepVerdict {
  readonly at: 'source agent';
  readonly node?: string;
  readonly plan: 'tunnel' | 'waypoint' | 'passthrough' | 'refuse';
  /** Where the tunnel goes: `ip:15008` of the destination pod or a waypoint pod. */
  readonly nextHop?: string;
  /** The HBONE CONNECT authority. */
  readonly authority?: string;
  /** The SPIFFE ID the next hop must prove. */
  readonly expectedIdentity?: string;
}

/** The L7 request (or TCP connection) the waypoint authorizes. */
export interface WaypointRequestView {
  readonly srcIp: string;
  readonly srcIdentity?: string;
  readonly dstIp: string;
  readonly dstPort: number;
  readonly method?: string;
  /** Normalized, without the query. */
  readonly path?: string;
  readonly query?: string;
  readonly host?: string;
  readonly headers?: readonly (readonly [string, string])[];
}

/** One weighted backend of the matched route rule. */
export interface RouteBackend {
  /** `namespace/name:port`, as written in the rule. */
  readonly backend: string;
  readonly weight: number;
  /** Why requests given this share fail (an invalid ref, no ready endpoints). */
  readonly problem?: string;
}

export interface RouteExplanation {
  /** The rule's id, `namespace/route` plus its name or `rules[i]` (as flow events' `http.route`). */
  readonly rule: string;
  readonly route: string;
  readonly ruleIndex: number;
  /** The backend explained (the first weighted one); absent when the rule answers itself. */
  readonly backend?: string;
  /** Every backend with a share of the traffic, in rule order. */
  readonly backends: readonly RouteBackend[];
  /** The path sent upstream when a URLRewrite changes it. */
  readonly rewrittenPath?: string;
}

/** The waypoint: L7 AuthorizationPolicy (or its TCP view), then HTTPRoute. */
export interface WaypointStep extends StepVerdict {
  readonly at: 'waypoint';
  readonly waypoint: NamespacedName;
  /** The waypoint pod the source agent tunnels to. */
  readonly pod?: string;
  readonly identity?: string;
  readonly protocol: 'http' | 'tcp';
  /** Why that protocol: the Service port's declaration, or what detection would see. */
  readonly protocolReason: string;
  readonly request: WaypointRequestView;
  /** Bound policies in evaluation order: CUSTOM, DENY, ALLOW, AUDIT, then dry-run. */
  readonly policies: readonly PolicyEvaluation[];
  readonly audit: readonly PolicyRuleMatch[];
  readonly dryRun: readonly PolicyRuleMatch[];
  /** Envoy's response detail for a denial (`rbac_access_denied_matched_policy[...]`). */
  readonly responseDetails?: string;
  /** The status the waypoint answers itself with (403, 404, 503, a redirect), when it does. */
  readonly status?: number;
  readonly route?: RouteExplanation;
  /** Where the request goes next, when it goes on. */
  readonly upstream?: ExplainedEndpoint;
}

/** The destination's node agent: PeerAuthentication, then L4 AuthorizationPolicy (agent/policy). */
export interface DestinationAgentStep extends StepVerdict {
  readonly at: 'destination agent';
  readonly node?: string;
  readonly workload: NamespacedName & { readonly identity: string };
  /** What the agent authorizes: the direct peer and the pod address and port. */
  readonly connection: {
    readonly srcIp: string;
    readonly srcIdentity?: string;
    readonly dstIp: string;
    readonly dstPort: number;
    /** HBONE (with a peer identity) or plaintext captured on the way in. */
    readonly arrival: 'hbone' | 'plaintext';
  };
  readonly peerAuthentication?: PeerAuthenticationCheck;
  /** Enforced DENY then ALLOW policies, then dry-run ones. */
  readonly policies: readonly PolicyEvaluation[];
  /** Policies that select the workload but that the node agent does not enforce. */
  readonly ignored: readonly { readonly policy: string; readonly reason: string }[];
  readonly dryRun: readonly PolicyRuleMatch[];
}

export type ExplainStep = SourceAgentStep | WaypointStep | DestinationAgentStep;

/** The verdict for one endpoint of a Service with several. */
export interface EndpointOutcome {
  readonly endpoint: ExplainedEndpoint;
  readonly verdict: FlowVerdict;
  readonly policy?: string;
  readonly rule?: number;
  readonly decidedAt: DecisionPoint;
  readonly reason: string;
}

export interface Explanation {
  readonly source: ExplainedSource;
  readonly destination: ExplainedDestination;
  /** As flow events name it; `none` when the source agent refuses the connection. */
  readonly path: FlowPath;
  readonly waypoint?: NamespacedName;
  /** The HTTP request explained, with defaults filled in; absent when the flow is explained as TCP. */
  readonly http?: { readonly method: string; readonly path: string; readonly host: string };
  /** The deciding points in the order the flow meets them; the last one decides. */
  readonly steps: readonly ExplainStep[];
  readonly verdict: FlowVerdict;
  readonly policy?: string;
  readonly rule?: number;
  readonly reason: string;
  readonly decidedAt: DecisionPoint;
  /** The endpoint this explanation follows the flow to (the first of several). */
  readonly endpoint?: ExplainedEndpoint;
  /** Every candidate endpoint's verdict, when a Service has more than one. */
  readonly endpoints?: readonly EndpointOutcome[];
  /** What explain assumed or what the reader should know (bypassed waypoints, defaults, divergences). */
  readonly notes: readonly string[];
}
