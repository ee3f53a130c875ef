// How a chaos report reads for people: per scenario, the requests, the events, latency in and outside
// their windows, the long-lived connections, the outages, the capture and the verdicts.
import type { EventWindow, WindowFigures } from './analysis.js';
import type { ChaosReport, ChaosScenarioResult, LoadTotals } from './result.js';

function kinds(k: Partial<Record<string, number>>): string {
  const parts = Object.entries(k)
    .filter(([, n]) => (n ?? 0) > 0)
    .map(([kind, n]) => `${kind} ${n}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

function num(v: number | null): string {
  return v === null ? '-' : String(v);
}

function loadLine(name: string, l: LoadTotals): string {
  return `| ${name} | ${l.targetRps} | ${l.achievedRps} | ${l.completedRps} | ${l.sent} | ${l.failed}${kinds(l.failedByKind)} | ${l.retried} | ${l.p99Ms} | ${l.maxMs} |`;
}

function cell(w: WindowFigures): string {
  const onRetry = w.failedAfterRetry > 0 ? `, ${w.failedAfterRetry} on retry` : '';
  return `${w.requests} / ${w.failed}${kinds(w.failedByKind)}${onRetry} / ${w.retried} / ${num(w.p99Ms)} / ${num(w.maxMs)}`;
}

function windowLine(w: EventWindow): string {
  const span = w.window === 'outside' ? '' : ` (${((w.toMs - w.fromMs) / 1000).toFixed(1)} s)`;
  return `| ${w.window}${span} | ${cell(w.keepAlive)} | ${cell(w.newConnection)} | ${cell(w.probes)} |`;
}

export function formatScenario(s: ChaosScenarioResult): string {
  const lines: string[] = [
    `### ${s.mode === 'restart' ? 'Restarts' : 'SIGKILL'} (${s.seconds} s measured, marker ${s.marker})`,
    '',
    `Requests: ${s.requests.sent} sent, ${s.requests.failed} failed, ${s.requests.retried} retried` +
      `${s.sustained ? '' : ' — the target rates were NOT sustained: requests queued in the generator (completed/s)'}.`,
    '',
    '| load | target rps | answered/s | completed/s | sent | failed | retried | p99 ms | max ms |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    loadLine(`keep-alive HTTP/1.1 (${s.keepAlive.connections} connections, retry on)`, s.keepAlive),
    loadLine('new connection per request', s.newConnection),
    `| probe (new connection every ${s.probes.intervalMs} ms, ${s.probes.timeoutMs} ms timeout) | | | | ${s.probes.sent} | ${s.probes.failed} | | | |`,
    '',
    'Events:',
    '',
    ...s.events.map(
      (e) =>
        `- ${e.target}: \`${e.action}\`, ${((Math.max(e.endedAtMs, e.replacedAtMs ?? 0) - e.startedAtMs) / 1000).toFixed(1)} s, pid ${num(e.pidBefore)} → ${num(e.pidAfter)}${e.problem === undefined ? '' : ` — NOT DONE: ${e.problem}`}`,
    ),
    '',
    'Per window (requests / failed / retried / p99 ms / max ms, by scheduled start; a window runs from the',
    'action to 1 s after it returned):',
    '',
    '| window | keep-alive | new connection | probe |',
    '|---|---|---|---|',
    ...s.windows.map(windowLine),
  ];
  if (s.outages.length > 0) {
    lines.push(
      '',
      'Outages (from the kill command’s return to the end of the first of 10 probes in a row that succeed):',
      '',
    );
    for (const o of s.outages)
      lines.push(
        `- ${o.target}: ${o.outageMs === null ? 'DID NOT RECOVER before the next event' : `${o.outageMs} ms`}, ${o.failedProbes} probes failed` +
          `${o.laterFailedProbes > 0 ? ` (and ${o.laterFailedProbes} isolated ones after it came back)` : ''}` +
          `; the new process: ready ${num(o.startToReadyMs)} ms and serving ${num(o.startToServingMs)} ms after it started`,
      );
  }
  const st = s.streams;
  lines.push(
    '',
    `Long-lived connections (${st.slots}, a line every interval, echo checked; a closed one reconnects):` +
      ` of the first ${st.slots}, ${st.firstSurvived} survived to the end and ${st.firstClosed} were closed;` +
      ` over the run ${st.connections} connections, ${st.survived} open and echoing at the end` +
      `${st.stalled > 0 ? ` (${st.stalled} more open but STALLED)` : ''},` +
      ` ${st.closedAtDrainDeadline} closed at a drain deadline, ${st.closedOtherwise} otherwise` +
      ` (FIN ${st.closedByFin}, reset ${st.closedByReset}, echo mismatch ${st.mismatches});` +
      ` ${st.closesLosingData} closes lost bytes in flight (${st.unechoedBytes} bytes sent, never echoed);` +
      ` longest wait for an echo (or the end) ${st.longestWaitMs} ms, ${st.waitedOver.connections} connections` +
      ` waited ${st.waitedOver.ms} ms or more;` +
      ` reconnect failures ${st.reconnectFailures}.`,
  );
  if (s.drains.length > 0) {
    lines.push('', 'Drains logged:', '');
    for (const d of s.drains)
      lines.push(
        `- ${d.target} pid ${d.pid}: ${d.finishedAtMs === null ? 'not finished' : `${((d.finishedAtMs - d.startedAtMs) / 1000).toFixed(1)} s`}${d.report === null ? '' : ` ${JSON.stringify(d.report)}`}`,
      );
  }
  lines.push(
    '',
    `CPUs busy on average (${s.cpu.seconds} s): the machine ${s.cpu.machineCores}; ` +
      Object.entries(s.cpu.roles)
        .map(([role, cores]) => `${role} ${cores}`)
        .join(', ') +
      '.',
  );
  const c = s.capture;
  lines.push(
    '',
    `Capture: ${c.links.map((l) => `${l.node} ${l.what} ${l.device} ${l.packets} packets (${l.hbonePackets} on :15008, kernel drops ${num(l.droppedByKernel)})`).join('; ')};` +
      ` packets with the marker: ${c.markerPackets}; the plaintext control request seen in ${c.controlPackets} packets.`,
    `Mesh evidence: the waypoint logged ${s.mesh.waypointRequestsWithMarker} of the run's requests; the agents logged ${Object.entries(
      s.mesh.agentConnectionsLogged,
    )
      .map(([n, v]) => `${n} ${v}`)
      .join(', ')} connections.`,
    '',
    ...s.criteria.map((cr) => `- ${cr.passed ? 'PASS' : 'FAIL'} ${cr.what}: ${num(cr.value)} (${cr.bound})`),
  );
  if (!s.check.passed) lines.push('', 'CHECK FAILED:', ...s.check.problems.map((p) => `- ${p}`));
  return lines.join('\n');
}

export function formatChaos(r: ChaosReport): string {
  return [
    `## weft bench chaos (${r.date}, ${r.commit}, lab ${r.labId})`,
    '',
    `\`${r.command}\``,
    '',
    `Path: ${r.path}. Machine: ${r.machine.cpus} CPUs, load ${r.machine.loadavgAtStart.join(' ')} at the start` +
      `${r.machine.otherLabs.length > 0 ? `, other weft labs running: ${r.machine.otherLabs.join(', ')}` : ''}.`,
    '',
    ...r.scenarios.map(formatScenario).flatMap((s) => [s, '']),
  ].join('\n');
}
