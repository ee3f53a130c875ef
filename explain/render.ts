// An Explanation as text for people: the ends, the path, each deciding point with the policies it
// evaluates (in evaluation order, the deciding one marked), then the verdict. `-o json` prints the
// Explanation itself instead.
import type {
  DestinationAgentStep,
  EndpointOutcome,
  ExplainedDestination,
  ExplainedEndpoint,
  ExplainedSource,
  ExplainStep,
  Explanation,
  PeerAuthenticationCheck,
  PolicyEvaluation,
  SourceAgentStep,
  WaypointStep,
} from './explanation.js';

/** Labels in a step are padded to this width so the values line up. */
const STEP_LABEL_WIDTH = 11;
/** And the top-level labels (from, to, path, …) to this one. */
const TOP_LABEL_WIDTH = 9;

export function renderExplanation(e: Explanation): string[] {
  const lines: string[] = [];
  const top = (label: string, value: string): void =>
    void lines.push(`${label.padEnd(TOP_LABEL_WIDTH)} ${value}`);
  top('from', sourceText(e.source));
  top('to', destinationText(e.destination));
  top('path', e.waypoint ? `${e.path} (${e.waypoint.namespace}/${e.waypoint.name})` : e.path);
  if (e.http) top('request', `${e.http.method} ${e.http.path}  host ${e.http.host}`);
  e.steps.forEach((step, i) => {
    lines.push('');
    lines.push(...stepLines(step, i + 1));
  });
  lines.push('');
  top('verdict', `${verdictText(e)}${e.decidedAt === 'none' ? '' : ` at the ${e.decidedAt}`}`);
  top('reason', e.reason);
  if (e.endpoint) top('endpoint', endpointText(e.endpoint));
  if (e.endpoints) {
    lines.push('endpoints');
    for (const outcome of e.endpoints) lines.push(`  ${endpointOutcomeText(outcome)}`);
  }
  if (e.notes.length > 0) {
    lines.push('notes');
    for (const note of e.notes) lines.push(`  - ${note}`);
  }
  return lines;
}

/** `DENIED by ns/name rule 0`; an ERROR names the policy that had allowed it, if any, apart. */
function verdictText(v: { verdict: string; policy?: string; rule?: number }): string {
  if (v.policy === undefined) return v.verdict;
  const policy = `${v.policy}${v.rule === undefined ? '' : ` rule ${v.rule}`}`;
  return v.verdict === 'ERROR' ? `ERROR (policy allowed it: ${policy})` : `${v.verdict} by ${policy}`;
}

function podName(p: { namespace?: string; pod?: string }): string | undefined {
  return p.pod === undefined ? undefined : `${p.namespace}/${p.pod}`;
}

function sourceText(s: ExplainedSource): string {
  const parts = [podName(s), s.ip, s.identity ?? 'plaintext (no identity)'].filter((x) => x !== undefined);
  const captured = s.captured
    ? `captured by ${s.node === undefined ? 'its node agent' : `the agent on ${s.node}`}`
    : 'not captured';
  return `${parts.join('  ')}  (${captured})`;
}

function destinationText(d: ExplainedDestination): string {
  const address = `${d.ip}:${d.port}`;
  if (d.service) return `Service ${d.service.namespace}/${d.service.name}  ${address}`;
  const pod = podName(d);
  return pod === undefined ? address : `pod ${pod}  ${address}`;
}

function endpointText(ep: ExplainedEndpoint): string {
  const pod = podName(ep);
  const where = ep.inMesh ? 'in the mesh' : 'outside the mesh';
  return `${pod === undefined ? '' : `${pod} `}${ep.ip}:${ep.port} (${where})`;
}

function endpointOutcomeText(o: EndpointOutcome): string {
  const at = o.decidedAt === 'none' ? '' : ` at the ${o.decidedAt}`;
  return `${endpointText(o.endpoint)}  ${verdictText(o)}${at}`;
}

function stepLines(step: ExplainStep, n: number): string[] {
  switch (step.at) {
    case 'source agent':
      return sourceAgentLines(step, n);
    case 'waypoint':
      return waypointLines(step, n);
    case 'destination agent':
      return destinationAgentLines(step, n);
  }
}

function field(label: string, value: string): string {
  return `   ${label.padEnd(STEP_LABEL_WIDTH)} ${value}`;
}

function outcome(step: ExplainStep, extra = ''): string {
  return `   -> ${verdictText(step)}: ${step.reason}${extra}`;
}

function sourceAgentLines(step: SourceAgentStep, n: number): string[] {
  const lines = [`${n}. source agent${step.node === undefined ? '' : ` (${step.node})`}`];
  lines.push(field('plan', step.plan));
  if (step.nextHop) lines.push(field('next hop', step.nextHop));
  if (step.authority) lines.push(field('CONNECT', step.authority));
  if (step.expectedIdentity) lines.push(field('expects', step.expectedIdentity));
  lines.push(outcome(step));
  return lines;
}

function waypointLines(step: WaypointStep, n: number): string[] {
  const pod = step.pod === undefined ? '' : ` (pod ${step.pod})`;
  const lines = [`${n}. waypoint ${step.waypoint.namespace}/${step.waypoint.name}${pod}`];
  lines.push(field('protocol', `${step.protocol}: ${step.protocolReason}`));
  const r = step.request;
  const from = `${r.srcIp} ${r.srcIdentity ?? '(no identity)'}`;
  lines.push(field('client', `${from} -> ${r.dstIp}:${r.dstPort}`));
  if (r.method !== undefined)
    lines.push(field('request', `${r.method} ${r.path ?? ''}${r.query ?? ''}  host ${r.host ?? '(none)'}`));
  for (const [name, value] of r.headers ?? []) lines.push(field('', `${name}: ${value}`));
  lines.push(...policyLines(step.policies, 'no AuthorizationPolicy is bound to this waypoint or Service'));
  for (const m of step.audit) lines.push(field('audit', `${m.policy} rule ${m.rule} matched (logged only)`));
  for (const m of step.dryRun)
    lines.push(field('dry-run', `${m.policy} rule ${m.rule} matched (${m.action})`));
  if (step.route) {
    const route = step.route;
    lines.push(field('route', `${route.rule}${route.backend === undefined ? '' : ` -> ${route.backend}`}`));
    if (route.backends.length > 1 || route.backends.some((b) => b.problem !== undefined)) {
      const total = route.backends.reduce((sum, b) => sum + b.weight, 0);
      for (const b of route.backends)
        lines.push(
          field('', `${b.backend} weight ${b.weight}/${total}${b.problem ? ` (${b.problem})` : ''}`),
        );
    }
    if (route.rewrittenPath !== undefined) lines.push(field('rewrite', route.rewrittenPath));
  } else if (step.protocol === 'http' && step.verdict === 'ALLOWED') {
    lines.push(field('route', 'none: passed through to what the client dialled'));
  }
  if (step.upstream) lines.push(field('upstream', endpointText(step.upstream)));
  lines.push(outcome(step, step.status === undefined ? '' : ` (${step.status})`));
  return lines;
}

function destinationAgentLines(step: DestinationAgentStep, n: number): string[] {
  const node = step.node === undefined ? '' : ` (${step.node})`;
  const lines = [`${n}. destination agent${node}: pod ${step.workload.namespace}/${step.workload.name}`];
  const c = step.connection;
  lines.push(
    field(
      'connection',
      `${c.srcIp} ${c.srcIdentity ?? '(no identity)'} -> ${c.dstIp}:${c.dstPort} (${c.arrival})`,
    ),
  );
  if (step.peerAuthentication) lines.push(field('mTLS', mtlsText(step.peerAuthentication)));
  if (step.peerAuthentication || step.policies.length > 0)
    lines.push(...policyLines(step.policies, 'no AuthorizationPolicy selects this pod'));
  for (const ignored of step.ignored) lines.push(field('ignored', `${ignored.policy}: ${ignored.reason}`));
  for (const m of step.dryRun)
    lines.push(field('dry-run', `${m.policy} rule ${m.rule} matched (${m.action})`));
  lines.push(outcome(step));
  return lines;
}

function mtlsText(pa: PeerAuthenticationCheck): string {
  const from =
    pa.levels.length === 0
      ? 'no PeerAuthentication: the default'
      : pa.levels
          .map((l) => `${l.level} ${l.policy}${l.portMode === undefined ? '' : `, port ${l.portMode}`}`)
          .join('; ');
  const effect = pa.decides
    ? `plaintext refused (${pa.policy})`
    : pa.identityRequired
      ? 'required, and the peer has one'
      : pa.peerIdentity
        ? 'the peer has an identity'
        : 'plaintext accepted';
  return `${pa.mode} (${from}): ${effect}`;
}

function policyLines(policies: readonly PolicyEvaluation[], none: string): string[] {
  if (policies.length === 0) return [field('policies', none)];
  const actionOf = (p: PolicyEvaluation): string => `${p.dryRun ? 'dry-run ' : ''}${p.action}`;
  const actionWidth = Math.max(...policies.map((p) => actionOf(p).length));
  const nameWidth = Math.max(...policies.map((p) => p.policy.length));
  const lines = [field('policies', 'in evaluation order')];
  for (const p of policies) {
    const action = actionOf(p).padEnd(actionWidth);
    const matched = p.matched ? `rule ${p.rule} matched` : 'no rule matched';
    const decides = p.decides ? '  <- decides' : '';
    const via = p.attachedVia === undefined ? '' : `  (targetRef ${p.attachedVia})`;
    lines.push(`     ${action} ${p.policy.padEnd(nameWidth)}  ${matched}${decides}${via}`);
    for (const warning of p.warnings) lines.push(`       ! ${warning}`);
  }
  return lines;
}
