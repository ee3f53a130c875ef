// `weft bench observe` as Markdown: the load per mode with ratios to A, the agents' memory and CPU, what
// the readers got, each round's figures, and the criteria with PASS/FAIL.
import { MODE_LABELS, type ModeSummary, type ObserveCostResult } from './report.js';

function x(ratio: number | null): string {
  return ratio === null || Number.isNaN(ratio) ? '–' : `${ratio.toFixed(2)}×`;
}

function signed(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(1)}`;
}

function signed2(v: number): string {
  return `${v >= 0 ? '+' : ''}${v.toFixed(2)}`;
}

function orDash(v: number | null): string {
  return v === null ? '–' : String(v);
}

function loadTable(summary: readonly ModeSummary[]): string[] {
  return [
    '| mode | runs | requests/s | vs A | p50 µs | vs A | p99 µs | vs A | errors | observer CPU s per run |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...summary.map(
      (s) =>
        `| ${MODE_LABELS[s.mode]} | ${s.runs} | ${s.rps} | ${x(s.rpsRatio)} | ${s.p50Us} | ${x(s.p50Ratio)} | ${s.p99Us} | ${x(s.p99Ratio)} | ${s.errors} | ${s.observerCpuSeconds} |`,
    ),
  ];
}

function memoryTable(summary: readonly ModeSummary[]): string[] {
  const nodes = summary[0]?.agents.map((a) => a.node) ?? [];
  const head = nodes.flatMap((n) => [
    `${n} live MiB after GC`,
    'vs A',
    'RSS after GC',
    'vs A',
    'RSS peak',
    'vs A',
    'RSS end',
  ]);
  const vsA = (s: ModeSummary, v: string): string => (s.mode === 'none' ? '–' : v);
  return [
    `| mode | ${head.join(' | ')} |`,
    `|---|${head.map(() => '---:|').join('')}`,
    ...summary.map((s) => {
      const cells = s.agents.flatMap((a) => [
        a.liveEndMiB.toFixed(2),
        vsA(s, signed2(a.liveEndVsAMiB)),
        a.rssAfterGcMiB.toFixed(1),
        vsA(s, signed(a.rssAfterGcVsAMiB)),
        String(a.rssPeakMiB),
        vsA(s, signed(a.rssPeakGrowthMiB)),
        String(a.rssEndMiB),
      ]);
      return `| ${MODE_LABELS[s.mode]} | ${cells.join(' | ')} |`;
    }),
    ...peakSpread(summary),
  ];
}

function cpuTable(summary: readonly ModeSummary[]): string[] {
  const nodes = summary[0]?.agents.map((a) => a.node) ?? [];
  const head = nodes.flatMap((n) => [`${n} CPU µs per request`, 'vs A']);
  return [
    `| mode | ${head.join(' | ')} |`,
    `|---|${head.map(() => '---:|').join('')}`,
    ...summary.map(
      (s) =>
        `| ${MODE_LABELS[s.mode]} | ${s.agents.flatMap((a) => [orDash(a.cpuUsPerRequest), x(a.cpuRatio)]).join(' | ')} |`,
    ),
  ];
}

/** How far A's peak RSS moved between its own rounds: the noise of the peak columns. */
function peakSpread(summary: readonly ModeSummary[]): string[] {
  const base = summary.find((s) => s.mode === 'none');
  if (base === undefined || base.runs < 2) return [];
  const spread = base.agents.map((a) => `${a.node} ${a.rssPeakSpreadMiB} MiB`).join(', ');
  return [
    '',
    `Peak RSS of A between its own ${base.runs} runs moved by ${spread}: the noise of the peak figures.`,
  ];
}

function readerTable(summary: readonly ModeSummary[], readersPerAgent: number): string[] {
  const rows = summary.filter((s) => s.mode !== 'none');
  return [
    `| mode | agent | readers | events received per reader | lost per reader (told) | readers told of losses (fewest in a run) | most bytes one reader received before its first loss notice (stalled: what was buffered for it) |`,
    '|---|---|---:|---:|---:|---:|---:|',
    ...rows.flatMap((s) =>
      s.agents.map(
        (a) =>
          `| ${MODE_LABELS[s.mode]} | ${a.node} | ${readersPerAgent} | ${orDash(a.eventsPerReader)} | ${orDash(a.lostPerReader)} | ${orDash(a.readersToldLost)} | ${orDash(a.maxBytesBeforeLost)} |`,
      ),
    ),
  ];
}

function runsTable(result: ObserveCostResult): string[] {
  const nodes = result.runs[0]?.agents.map((a) => a.node) ?? [];
  const head = nodes.flatMap((n) => [
    `${n} live / RSS after GC MiB`,
    `${n} RSS start → peak → end MiB`,
    `${n} CPU µs/req`,
  ]);
  return [
    `| round | mode | started | requests/s | p50 µs | p99 µs | ${head.join(' | ')} | other CPU µs/req | steal s |`,
    `|---:|---|---|---:|---:|---:|${head.map(() => '---:|').join('')}---:|---:|`,
    ...result.runs.map((r) => {
      const cells = r.agents.flatMap((a) => [
        `${a.liveEndMiB.toFixed(2)} / ${a.rssAfterGcMiB}`,
        `${a.rssStartMiB} → ${a.rssPeakMiB} → ${a.rssEndMiB}`,
        orDash(a.cpuUsPerRequest),
      ]);
      const lap = r.lapLoads > 0 ? ` (then ${r.lapLoads} × 1 s unmeasured, to lap them)` : '';
      return `| ${r.round} | ${MODE_LABELS[r.mode]}${lap} | ${r.startedAt.slice(11, 19)} | ${r.load.achievedRps} | ${r.load.p50Us} | ${r.load.p99Us} | ${cells.join(' | ')} | ${orDash(r.otherCpuUsPerRequest)} | ${r.stealSeconds} |`;
    }),
  ];
}

export function formatObserveCost(result: ObserveCostResult): string {
  const criteria = result.criteria.map(
    (c) => `- ${c.passed ? 'PASS' : 'FAIL'} ${MODE_LABELS[c.mode]}: ${c.what} = ${c.value} (${c.bound})`,
  );
  const check = result.check.passed
    ? 'check passed: every run was carried through both agents (their access logs), every reader stayed connected'
    : `CHECK FAILED (the figures do not measure what they claim):\n${result.check.problems.map((p) => `- ${p}`).join('\n')}`;
  const disturbed =
    result.disturbed.length === 0
      ? []
      : [
          'DISTURBED: other work ran on the machine during these runs, so the ratios do not measure the readers alone; run the bench again on a quiet machine:',
          ...result.disturbed.map((d) => `- ${d}`),
          '',
        ];
  return [
    ...disturbed,
    `Load: ${result.load}; ${result.rounds} round(s) of the modes in turn, ${result.readersPerAgent} readers per agent.`,
    '',
    ...loadTable(result.summary),
    '',
    'Memory (MiB; live = heap used + external, and RSS, both right after a full GC at the end of the run with the readers still connected; peak and end from /proc during the run):',
    '',
    ...memoryTable(result.summary),
    '',
    ...cpuTable(result.summary),
    '',
    ...readerTable(result.summary, result.readersPerAgent),
    '',
    'Each run:',
    '',
    ...runsTable(result),
    '',
    "Other CPU: the machine's CPU besides both agents and this process (the generator, echo, the kernel and " +
      'anything else running) per request: a run disturbed by another job shows here.',
    '',
    `Criteria (${result.criteriaPassed ? 'all held' : 'NOT ALL HELD'}):`,
    '',
    ...criteria,
    '',
    check,
    ...(result.disturbed.length === 0
      ? []
      : ['', `DISTURBED: ${result.disturbed.length} run(s), see the top`]),
  ].join('\n');
}
