// A CompareReport as a section of bench/RESULTS.md: how it was run, then per scenario the absolute
// figures, the ratios against direct and the baseline, and the cost per 1000 rps.
import type { CompareReport } from '../compare-report.js';
import {
  availablePaths,
  costTable,
  COST_NOTE,
  LATENCY_NOTE,
  RATIO_NOTE,
  headerFacts,
  ratioTable,
  scenarioTable,
  unavailablePaths,
  whyUnavailable,
  type Table,
} from './tables.js';

/** Text safe inside a Markdown table cell or paragraph: one line, no cell breaks, no raw HTML. */
function md(s: string): string {
  return s
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\|/g, '\\|')
    .replace(/</g, '&lt;');
}

/** A code span or fenced block that survives backticks in the text. */
function code(s: string): string {
  const ticks = '`'.repeat(Math.max(0, ...(s.match(/`+/g) ?? []).map((t) => t.length)) + 1);
  return ticks.length > 1 ? `${ticks} ${s} ${ticks}` : `\`${s}\``;
}

function fence(lang: string, s: string): string {
  const ticks = '`'.repeat(Math.max(2, ...(s.match(/`+/g) ?? []).map((t) => t.length)) + 1);
  return `${ticks}${lang}\n${s}\n${ticks}`;
}

export function markdownTable(t: Table): string {
  const lines = [
    `| ${t.headers.map(md).join(' | ')} |`,
    `|---|${t.headers
      .slice(1)
      .map(() => '---:|')
      .join('')}`,
  ];
  for (const r of t.rows)
    lines.push(`| ${md(r.label)} | ${'cells' in r ? r.cells.map(md).join(' | ') : md(r.note)} |`);
  return lines.join('\n');
}

export function formatCompareMarkdown(report: CompareReport): string {
  const facts = headerFacts(report);
  const out: string[] = [];
  out.push(`## Data plane compared: ${report.paths.map((p) => p.id).join(', ')}`, '');
  out.push('Command:', '', fence('sh', report.command), '');
  out.push(
    `- Date: ${md(facts.date)}`,
    `- Commit: ${md(report.commit)}`,
    `- Machine: ${md(facts.machine)}`,
    `- Generator floor: ${md(facts.floor)}`,
    '',
  );
  out.push('Paths:', '');
  for (const p of availablePaths(report)) out.push(`- **${p.id}**: ${md(p.title)}`);
  for (const p of unavailablePaths(report)) out.push(`- **${p.id}**: not measured: ${md(whyUnavailable(p))}`);
  out.push('');
  for (const s of report.scenarios) {
    out.push(`### (${s.id}) ${md(s.title)}`, '');
    if (s.clientArgs.length > 0) out.push(`Client: ${code(['weft', ...s.clientArgs].join(' '))}`, '');
    if (s.kind === 'latency') out.push(LATENCY_NOTE, '');
    out.push(markdownTable(scenarioTable(report, s)), '');
  }
  out.push('### Ratios', '');
  out.push(RATIO_NOTE, '', markdownTable(ratioTable(report)), '');
  out.push('### Cost per 1000 rps', '');
  out.push(COST_NOTE, '', markdownTable(costTable(report)), '');
  return out.join('\n');
}
