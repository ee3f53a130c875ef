// A CompareReport as one self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched):
// how it was run, an HDR-style latency-by-percentile plot per latency scenario, bars for rates, Gbit/s
// and memory, and the same tables as the Markdown.
import type { CompareReport, PathId, PathRun, ScenarioKind, ScenarioReport } from '../compare-report.js';
import { barChart, esc, linearAxis, logAxis, linePlot, type Bar, type Series, type Tick } from './svg.js';
import {
  availablePaths,
  costTable,
  COST_NOTE,
  LATENCY_NOTE,
  RATIO_NOTE,
  headerFacts,
  ratioTable,
  runOf,
  scenarioTable,
  unavailablePaths,
  whyUnavailable,
  type Table,
} from './tables.js';

const COLOURS: Record<PathId, string> = {
  direct: '#6b7280',
  mesh: '#2563eb',
  waypoint: '#059669',
  haproxy: '#d97706',
};

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; padding: 0 1rem; }
body { color: #111827; }
h1 { font-size: 1.5rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #e5e7eb; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
code { font: 12px ui-monospace, monospace; background: #f3f4f6; padding: .1rem .3rem; white-space: pre-wrap; }
table { border-collapse: collapse; margin: .8rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e5e7eb; padding: .25rem .55rem; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
th { background: #f9fafb; }
td.note { text-align: left; color: #b91c1c; white-space: pre-wrap; }
svg { display: block; max-width: 100%; height: auto; margin: .8rem 0; }
.unavailable { color: #6b7280; }
`;

/** Plot x for a percentile: log10(1 / (1 − p)), so 90 % → 1, 99 % → 2 … 99.999 % → 5. */
function percentileX(p: number): number {
  return p >= 100 ? 5 : Math.min(5, Math.log10(100 / (100 - p)));
}

const PERCENTILE_TICKS: readonly Tick[] = ['0%', '90%', '99%', '99.9%', '99.99%', '99.999%'].map(
  (label, value) => ({ value, label }),
);

function latencyPlot(report: CompareReport, s: ScenarioReport): string {
  const series: Series[] = [];
  for (const p of availablePaths(report)) {
    const run = runOf(s, p.id);
    const curve = run?.error === undefined ? run?.load?.latencyCurve : undefined;
    if (curve === undefined || curve.length === 0) continue;
    series.push({
      label: p.id,
      colour: COLOURS[p.id],
      points: curve.map(([pct, us]) => [percentileX(pct), us / 1000] as const),
    });
  }
  const ys = series.flatMap((sr) => sr.points.map(([, y]) => y));
  const positive = ys.filter((y) => y > 0);
  const min = positive.length > 0 ? Math.min(...positive) : 1;
  const max = ys.length > 0 ? Math.max(...ys) : 1;
  // Tails span decades: a log scale when the curve does, so the body stays readable.
  const log = max / min >= 50;
  return linePlot({
    title: `(${s.id}) latency by percentile, from the scheduled start`,
    className: 'latency-plot',
    x: { min: 0, max: 5, log: false, ticks: PERCENTILE_TICKS },
    y: log ? logAxis(min, max) : linearAxis(max),
    xLabel: 'percentile',
    yLabel: `latency, ms${log ? ' (log scale)' : ''}`,
    series,
  });
}

interface BarSpec {
  readonly what: string;
  readonly unit: string;
  readonly digits: number;
  readonly value: (run: PathRun) => number | undefined;
}

const BAR_SPECS: Record<Exclude<ScenarioKind, 'latency'>, BarSpec> = {
  throughput: { what: 'requests per second', unit: 'rps', digits: 0, value: (r) => r.load?.achievedRps },
  bulk: { what: 'Gbit/s', unit: 'Gbit/s', digits: 2, value: (r) => r.bulk?.gbitPerSecond },
  memory: {
    what: 'MiB per 1000 idle connections',
    unit: 'MiB',
    digits: 1,
    value: (r) => r.idle?.mibPer1000Connections,
  },
};

function bars(report: CompareReport, s: ScenarioReport, spec: BarSpec): string {
  const items = availablePaths(report).map((p): Bar => {
    const run = runOf(s, p.id);
    const value = run === undefined || run.error !== undefined ? undefined : spec.value(run);
    const text =
      run?.error !== undefined
        ? 'error'
        : value === undefined
          ? 'no result'
          : `${value.toFixed(spec.digits)} ${spec.unit}`;
    return { label: p.id, colour: COLOURS[p.id], value, text };
  });
  return barChart(`(${s.id}) ${spec.what}`, `bars-${s.kind}`, items);
}

function htmlTable(t: Table): string {
  const head = `<tr>${t.headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = t.rows
    .map(
      (r) =>
        `<tr><td>${esc(r.label)}</td>${
          'cells' in r
            ? r.cells.map((c) => `<td>${esc(c)}</td>`).join('')
            : `<td class="note" colspan="${t.headers.length - 1}">${esc(r.note)}</td>`
        }</tr>`,
    )
    .join('\n');
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

export function renderCompareHtml(report: CompareReport): string {
  const facts = headerFacts(report);
  const out: string[] = [];
  out.push(
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>weft bench compare, ${esc(report.commit)}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<h1>Data plane compared: ${esc(report.paths.map((p) => p.id).join(', '))}</h1>`,
    '<dl class="facts">',
    `<dt>Command</dt><dd><code>${esc(report.command)}</code></dd>`,
    `<dt>Date</dt><dd>${esc(facts.date)}</dd>`,
    `<dt>Commit</dt><dd><code>${esc(report.commit)}</code></dd>`,
    `<dt>Machine</dt><dd>${esc(facts.machine)}</dd>`,
    `<dt>Generator floor</dt><dd>${esc(facts.floor)}</dd>`,
    '</dl>',
    '<h2>Paths</h2>',
    '<ul>',
  );
  for (const p of availablePaths(report))
    out.push(`<li><strong style="color:${COLOURS[p.id]}">${esc(p.id)}</strong>: ${esc(p.title)}</li>`);
  for (const p of unavailablePaths(report))
    out.push(
      `<li class="unavailable"><strong>${esc(p.id)}</strong>: not measured: ${esc(whyUnavailable(p))}</li>`,
    );
  out.push('</ul>');
  for (const s of report.scenarios) {
    out.push(`<section id="scenario-${esc(s.id)}">`, `<h2>(${esc(s.id)}) ${esc(s.title)}</h2>`);
    if (s.clientArgs.length > 0)
      out.push(`<p>Client: <code>${esc(['weft', ...s.clientArgs].join(' '))}</code></p>`);
    if (s.kind === 'latency') out.push(`<p>${esc(LATENCY_NOTE)}</p>`);
    out.push(s.kind === 'latency' ? latencyPlot(report, s) : bars(report, s, BAR_SPECS[s.kind]));
    out.push(htmlTable(scenarioTable(report, s)), '</section>');
  }
  out.push(
    '<h2>Ratios</h2>',
    `<p>${esc(RATIO_NOTE)}</p>`,
    htmlTable(ratioTable(report)),
    '<h2>Cost per 1000 rps</h2>',
    `<p>${esc(COST_NOTE)}</p>`,
    htmlTable(costTable(report)),
    '</body>',
    '</html>',
    '',
  );
  return out.join('\n');
}
