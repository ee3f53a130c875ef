// `weft lab status` and the summary `weft lab up` prints: the state file, with each recorded process
// checked against the live process table.
import { isRunning, type LabState, type NodeState, type ProcessRecord } from './state.js';

function proc(record: ProcessRecord | null): string {
  if (record === null) return 'not running';
  return isRunning(record) ? `pid ${record.pid}` : `pid ${record.pid} (gone)`;
}

function agentStatus(n: NodeState): string {
  // Older state files (before agents were supervised) have no phase.
  if (n.agentPhase === undefined) return proc(n.agent);
  const restarts =
    n.agentRestarts > 0 ? `, ${n.agentRestarts} restart${n.agentRestarts === 1 ? '' : 's'}` : '';
  const message = n.agentPhase !== 'ready' && n.agentMessage ? `: ${n.agentMessage}` : '';
  return `${n.agentPhase}${n.agent === null ? '' : ` ${proc(n.agent)}`}${restarts}${message}`;
}

/** Rows as aligned columns (two spaces apart), for the CLI's plain-text listings. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
}

export function formatLabStatus(state: LabState): string {
  const controllerUp = state.controller !== null && isRunning(state.controller);
  const phase =
    !controllerUp && state.phase !== 'stopped' ? `${state.phase}, controller not running` : state.phase;
  const lines = [
    `lab ${state.id} (${phase}) in ${state.dir}`,
    `  controller  ${proc(state.controller)}${state.error ? `; error: ${state.error}` : ''}`,
    `  manifests   ${state.manifestsDir}   (weft apply -f FILE, weft label namespace NS k=v)`,
    `  logs        ${state.logsDir}`,
    `  fabric      netns ${state.fabric.netns}, bridge ${state.fabric.bridge}`,
    `  CA          ${state.ca.grpc} (gRPC), ${state.ca.http} (HTTP) on ${state.ca.node}, ${proc(state.ca.process)}`,
    '',
    ...table([
      ['NODE', 'NETNS', 'UPLINK', 'POD CIDR', 'GATEWAY', 'AGENT'],
      ...state.nodes.map((n) => [
        n.name,
        n.netns,
        `${n.uplinkIp} (${n.uplink})`,
        n.podCidr,
        n.gateway,
        agentStatus(n),
      ]),
    ]),
  ];
  if (state.pods.length > 0) {
    lines.push(
      '',
      ...table([
        ['POD', 'NODE', 'IP', 'VETH', 'PHASE', 'RESTARTS', 'PROCESS', 'MESSAGE'],
        ...state.pods.map((p) => [
          `${p.namespace}/${p.name}`,
          p.node,
          p.ip,
          p.veth,
          p.phase,
          String(p.restarts),
          p.process === null ? '-' : proc(p.process),
          p.message ?? '',
        ]),
      ]),
    );
  }
  if (state.services.length > 0) {
    lines.push(
      '',
      ...table([
        ['SERVICE', 'CLUSTER-IP', 'PORTS'],
        ...state.services.map((s) => [
          `${s.namespace}/${s.name}`,
          s.clusterIps.join(',') || '-',
          s.ports.join(' '),
        ]),
      ]),
    );
  }
  return lines.join('\n');
}

/** The state with a `running` flag on every process record, for `weft lab status --json`. */
export function labStatusJson(state: LabState): unknown {
  const mark = (r: ProcessRecord | null) => (r === null ? null : { ...r, running: isRunning(r) });
  return {
    ...state,
    controller: mark(state.controller),
    ca: { ...state.ca, process: mark(state.ca.process) },
    nodes: state.nodes.map((n) => ({ ...n, agent: mark(n.agent) })),
    pods: state.pods.map((p) => ({ ...p, process: mark(p.process) })),
    processes: state.processes.map(mark),
  };
}
