// The destination's node agent: its admission of a tunnelled connection (agent/inbound.ts admitInbound)
// or of plaintext captured on the way in (as agent/inbound-plaintext.ts), and the L4 authorization it
// runs (PolicyAuthorizer). The verdict is the agent's own; the per-policy listing is traceL4 over the
// same compiled policy, walked for the very connection the agent authorized.
import { PolicyAuthorizer, type InboundAuthorizer, type L4Connection } from '../agent/authorizer.js';
import { admitInbound, DEFAULT_AGENT_PORTS } from '../agent/inbound.js';
import { compileL4Policy } from '../agent/policy/compile.js';
import { traceL4, type L4AuthorizationTrace } from '../agent/policy/evaluate.js';
import { LocalWorkloads } from '../agent/workloads.js';
import type { L4Verdict } from '../core/authz/verdict.js';
import { parseHboneAuthority } from '../core/hbone/authority.js';
import { effectiveMtlsMode, type PeerAuthenticationLevels } from '../core/model/peer-auth.js';
import type { Workload } from '../core/model/workload.js';
import { formatSpiffeId, type SpiffeIdentity } from '../core/spiffe.js';
import type { ConfigStore } from '../core/store.js';
import type {
  DestinationAgentStep,
  PeerAuthenticationCheck,
  PeerAuthenticationLevel,
  PolicyEvaluation,
} from './explanation.js';

/** How the connection reaches the destination's agent. */
export type Arrival =
  /** An HBONE CONNECT from a peer proving `peerIdentity`, from `peerIp` (the client, or a waypoint). */
  | {
      readonly kind: 'hbone';
      readonly authority: string;
      readonly peerIp: string;
      readonly peerIdentity: SpiffeIdentity;
    }
  /** Plaintext from outside the mesh, captured on its way into the pod. */
  | { readonly kind: 'plaintext'; readonly srcIp: string; readonly dstIp: string; readonly dstPort: number };

export function destinationAgentStep(
  store: ConfigStore,
  workload: Workload,
  arrival: Arrival,
  trustDomain: string,
): DestinationAgentStep {
  const agent = new LocalWorkloads(store, workload.nodeName ?? '', trustDomain);
  const policies = new PolicyAuthorizer(store);
  // The connection the agent authorizes, exactly as it built it.
  let authorized: L4Connection | undefined;
  const authorizer: InboundAuthorizer = {
    authorize(w, conn) {
      authorized = conn;
      return policies.authorize(w, conn);
    },
  };
  const agentPorts = new Set(DEFAULT_AGENT_PORTS);
  let verdict: L4Verdict | undefined;
  let refusal: string | undefined;
  if (arrival.kind === 'hbone') {
    const decision = admitInbound(
      agent,
      authorizer,
      agentPorts,
      workload,
      { ':method': 'CONNECT', ':authority': arrival.authority },
      { ip: arrival.peerIp, port: 0, identity: arrival.peerIdentity },
    );
    if (decision.kind === 'admit') verdict = decision.verdict;
    else if (decision.verdict !== undefined) verdict = decision.verdict;
    else refusal = `refused with ${decision.status}: ${decision.reason}`;
  } else {
    // agent/inbound-plaintext.ts PlaintextInbound.handle, without the socket.
    const { srcIp, dstIp, dstPort } = arrival;
    const owner = agent.owning(dstIp);
    if (owner === undefined || owner.uid !== workload.uid)
      refusal = `${dstIp} is not a workload of this node`;
    else if (agentPorts.has(dstPort)) refusal = `port ${dstPort} is the agent's own`;
    else verdict = authorizer.authorize(owner, { srcIp, srcIdentity: undefined, dstIp, dstPort });
  }

  const base = {
    at: 'destination agent' as const,
    ...(workload.nodeName !== undefined && { node: workload.nodeName }),
    workload: { namespace: workload.namespace, name: workload.name, identity: agent.spiffeIdOf(workload) },
  };
  if (verdict === undefined || authorized === undefined) {
    return {
      ...base,
      verdict: 'ERROR',
      reason: refusal ?? 'not authorized',
      connection: connectionView(arrivalConnection(arrival)),
      policies: [],
      ignored: [],
      dryRun: [],
    };
  }
  const levels = store.peerAuthenticationsFor(workload);
  const trace = traceL4(
    compileL4Policy(store.authorizationPoliciesFor(workload), levels, store.rootNamespace),
    authorized,
  );
  return {
    ...base,
    verdict: verdict.allowed ? 'ALLOWED' : 'DENIED',
    ...(verdict.policy !== undefined && { policy: verdict.policy }),
    ...(verdict.rule !== undefined && { rule: verdict.rule }),
    reason: verdict.message,
    connection: connectionView(authorized),
    peerAuthentication: peerAuthenticationCheck(levels, authorized, trace, verdict),
    policies: policyEvaluations(trace, verdict),
    ignored: trace.ignored,
    dryRun: verdict.dryRun,
  };
}

function connectionView(conn: L4Connection): DestinationAgentStep['connection'] {
  return {
    srcIp: conn.srcIp,
    ...(conn.srcIdentity !== undefined && { srcIdentity: formatSpiffeId(conn.srcIdentity) }),
    dstIp: conn.dstIp,
    dstPort: conn.dstPort,
    arrival: conn.srcIdentity === undefined ? 'plaintext' : 'hbone',
  };
}

/** The connection as stated by the arrival, for refusals made before authorization. */
function arrivalConnection(arrival: Arrival): L4Connection {
  if (arrival.kind === 'plaintext') return { ...arrival, srcIdentity: undefined };
  const target = parseHboneAuthority(arrival.authority);
  return {
    srcIp: arrival.peerIp,
    srcIdentity: arrival.peerIdentity,
    dstIp: target?.ip ?? arrival.authority,
    dstPort: target?.port ?? 0,
  };
}

function peerAuthenticationCheck(
  levels: PeerAuthenticationLevels,
  conn: L4Connection,
  trace: L4AuthorizationTrace,
  verdict: L4Verdict,
): PeerAuthenticationCheck {
  const listed: PeerAuthenticationLevel[] = [];
  for (const level of ['mesh', 'namespace', 'workload'] as const) {
    const pa = levels[level];
    if (pa === undefined) continue;
    const portMode = pa.portLevelMtls.find((entry) => entry.port === conn.dstPort)?.mode;
    listed.push({
      level,
      policy: `${pa.namespace}/${pa.name}`,
      mode: pa.mode,
      ...(portMode !== undefined && { portMode }),
    });
  }
  return {
    levels: listed,
    mode: effectiveMtlsMode(levels, conn.dstPort),
    identityRequired: trace.identityRequired,
    peerIdentity: conn.srcIdentity !== undefined,
    decides: verdict.reason === 'peer-authentication-strict',
    policy: trace.strictPolicy,
  };
}

function policyEvaluations(trace: L4AuthorizationTrace, verdict: L4Verdict): PolicyEvaluation[] {
  return [...trace.deny, ...trace.allow, ...trace.dryRun].map((p) => ({
    policy: p.policy,
    action: p.action,
    dryRun: p.dryRun,
    matched: p.matchedRule !== undefined,
    ...(p.matchedRule !== undefined && { rule: p.matchedRule }),
    decides:
      !p.dryRun &&
      verdict.rule !== undefined &&
      p.policy === verdict.policy &&
      p.matchedRule === verdict.rule,
    warnings: p.warnings,
  }));
}
