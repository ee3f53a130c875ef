// charts/weft/dashboards/weft-mesh.json, the Grafana dashboard the chart ships, checked against the code:
// every metric a query names is one Weft registers (the real metric classes, registered into a
// prom-client Registry, and the agent's capture gauge read from its source), every label a query selects,
// groups or prints is one those metrics carry, and the PromQL is lexed and checked for balanced brackets,
// known functions and known label values. Renaming a metric or a label in the code fails here.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { CertificateManager } from '../../core/identity/manager.js';
import { registerCertificateMetrics } from '../../core/identity/certificate-metrics.js';
import { ConnectionBudget, DEFAULT_CONNECTION_LIMITS } from '../../agent/connection-budget.js';
import { componentLogger } from '../../core/log.js';
import { TcpMetrics } from '../../core/telemetry/tcp-metrics.js';
import { RequestMetrics, WAYPOINT_REPORTER } from '../../proxy/telemetry/request-metrics.js';
import { STAT_NAMES } from '../../ebpf-redirect/maps.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DASHBOARD_PATH = join(ROOT, 'charts', 'weft', 'dashboards', 'weft-mesh.json');

// ---- what Weft exports --------------------------------------------------------------------------------

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

interface ExportedMetric {
  readonly name: string;
  readonly type: MetricType;
  readonly labels: ReadonlySet<string>;
  /** Where it was found: a class registered here, or a source file. */
  readonly from: string;
}

/** The metrics of the classes the agent and the waypoint register, from a real Registry. */
async function registeredMetrics(): Promise<ExportedMetric[]> {
  const registry = new Registry();
  const classes = { TcpMetrics: new TcpMetrics(registry), RequestMetrics: new RequestMetrics(registry) };
  // The agent's certificate and connection-bound metrics, registered as the agent registers them.
  const log = componentLogger('test.dashboard');
  const noCa = { createCertificate: () => Promise.reject(new Error('no CA here')), close() {} };
  const certificates = new CertificateManager({ caClient: noCa, trustDomain: 'td', ttlSeconds: 60, log });
  registerCertificateMetrics(registry, certificates);
  certificates.close();
  new ConnectionBudget(DEFAULT_CONNECTION_LIMITS, registry, log);
  const owner = new Map<string, string>();
  for (const [name, instance] of Object.entries(classes))
    for (const m of Object.values(instance) as unknown[])
      if (m !== null && typeof m === 'object' && 'name' in m) owner.set(String(m.name), name);
  const out: ExportedMetric[] = [];
  for (const json of await registry.getMetricsAsJSON()) {
    // prom-client keeps a metric's label names on the instance (not in its typings).
    const labelNames = (registry.getSingleMetric(json.name) as unknown as { labelNames?: unknown })
      ?.labelNames;
    if (!Array.isArray(labelNames)) throw new Error(`${json.name}: prom-client no longer exposes labelNames`);
    out.push({
      name: json.name,
      type: String(json.type) as MetricType,
      labels: new Set(labelNames as string[]),
      from: owner.get(json.name) ?? 'registry',
    });
  }
  return out;
}

/**
 * Metrics registered inline (`new Gauge({ name: '…', labelNames: […] })`) in functions the test cannot
 * call, like the agent's capture gauge (it needs the kernel's BPF maps), read from their source.
 */
function declaredMetrics(file: string): ExportedMetric[] {
  const source = readFileSync(join(ROOT, file), 'utf8');
  const out: ExportedMetric[] = [];
  for (const m of source.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{/g)) {
    const body = source.slice(m.index, m.index + 800);
    const name = /^\s*name: '([a-zA-Z_:][a-zA-Z0-9_:]*)',/m.exec(body.slice(m[0].length));
    const labels = /labelNames: \[([^\]]*)\]/.exec(body);
    if (!name) continue;
    out.push({
      name: name[1]!,
      type: m[1]!.toLowerCase() as MetricType,
      labels: new Set([...(labels?.[1] ?? '').matchAll(/'([^']+)'/g)].map((x) => x[1]!)),
      from: file,
    });
  }
  return out;
}

/** Labels Prometheus adds to every scraped series (the target's), usable in any query. */
const TARGET_LABELS = new Set(['instance', 'job']);
/** Gauges holding cumulative totals (the kernel's counters, read at scrape time), so rate() fits them. */
const CUMULATIVE_GAUGES = new Set(['weft_capture_packets']);
/** Values the queries may compare labels with (exact or inside a `a|b` regex), where the code fixes them. */
const LABEL_VALUES: Readonly<Record<string, ReadonlySet<string>>> = {
  // The agent reports outbound connections as `source`, inbound as `destination` (connection-result.ts).
  reporter: new Set(['source', 'destination', WAYPOINT_REPORTER]),
  counter: new Set<string>(STAT_NAMES),
};

// ---- PromQL, roughly -----------------------------------------------------------------------------------

const AGGREGATIONS = new Set([
  'sum',
  'avg',
  'min',
  'max',
  'count',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
]);
const FUNCTIONS = new Set([
  'rate',
  'irate',
  'increase',
  'delta',
  'idelta',
  'deriv',
  'histogram_quantile',
  'round',
  'abs',
  'ceil',
  'floor',
  'clamp',
  'clamp_min',
  'clamp_max',
  'vector',
  'scalar',
  'absent',
  'sum_over_time',
  'avg_over_time',
  'max_over_time',
  'min_over_time',
  'label_replace',
  'sort',
  'sort_desc',
]);
const RANGE_FUNCTIONS = new Set(['rate', 'irate', 'increase']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset']);
const DURATION = /^(\$__rate_interval|\$__interval|\$__range|[0-9]+(ms|s|m|h|d|w|y))$/;

type Token =
  | { kind: 'ident'; text: string }
  | { kind: 'string'; text: string }
  | { kind: 'number'; text: string }
  | { kind: 'range'; text: string }
  | { kind: 'punct'; text: string };

function lex(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < expr.length && expr[j] !== c) j += expr[j] === '\\' ? 2 : 1;
      if (j >= expr.length) throw new Error(`unterminated string at ${i}`);
      tokens.push({ kind: 'string', text: expr.slice(i + 1, j) });
      i = j + 1;
      continue;
    }
    if (c === '[') {
      const j = expr.indexOf(']', i);
      if (j < 0) throw new Error(`unclosed [ at ${i}`);
      const inner = expr.slice(i + 1, j);
      const [range, step] = inner.split(':');
      if (!DURATION.test(range!) || (step !== undefined && step !== '' && !DURATION.test(step)))
        throw new Error(`bad range [${inner}]`);
      tokens.push({ kind: 'range', text: inner });
      i = j + 1;
      continue;
    }
    if (c === ']') throw new Error(`unbalanced ] at ${i}`);
    const ident = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(rest);
    if (ident) {
      tokens.push({ kind: 'ident', text: ident[0] });
      i += ident[0].length;
      continue;
    }
    const number = /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(rest);
    if (number) {
      tokens.push({ kind: 'number', text: number[0] });
      i += number[0].length;
      continue;
    }
    const punct = /^(=~|!~|==|!=|>=|<=|[-+*/%^<>=,(){}])/.exec(rest);
    if (punct) {
      tokens.push({ kind: 'punct', text: punct[0] });
      i += punct[0].length;
      continue;
    }
    throw new Error(`unexpected ${JSON.stringify(c)} at ${i}`);
  }
  return tokens;
}

interface Matcher {
  readonly label: string;
  readonly op: string;
  readonly value: string;
}

interface Selector {
  readonly metric: string;
  readonly matchers: readonly Matcher[];
  /** The function whose argument it is, when called directly on it (`rate(x[5m])`). */
  readonly fn: string | undefined;
}

interface Parsed {
  readonly selectors: readonly Selector[];
  /** Labels named in by/without/on/ignoring/group_left/group_right clauses. */
  readonly grouping: ReadonlySet<string>;
  /** Functions and aggregations it calls. */
  readonly functions: ReadonlySet<string>;
}

/** Walks the tokens: balanced brackets, known functions, selectors with their matchers, grouping labels. */
function parse(expr: string): Parsed {
  const tokens = lex(expr);
  const selectors: Selector[] = [];
  const grouping = new Set<string>();
  const functions = new Set<string>();
  const stack: string[] = [];
  const calls: (string | undefined)[] = [];
  const peek = (k: number) => tokens[k];
  const expect = (k: number, text: string) => {
    const tok = tokens[k];
    if (tok?.kind !== 'punct' || tok.text !== text)
      throw new Error(`expected ${text} at token ${k}, got ${tok?.text ?? 'end'}`);
  };
  for (let k = 0; k < tokens.length; k++) {
    const tok = tokens[k]!;
    if (tok.kind === 'punct') {
      if (tok.text === '(') {
        stack.push('(');
        calls.push(undefined);
      } else if (tok.text === ')') {
        if (stack.pop() !== '(') throw new Error(`unbalanced ) at token ${k}`);
        calls.pop();
      } else if (tok.text === '{' || tok.text === '}') throw new Error(`stray ${tok.text} at token ${k}`);
      continue;
    }
    if (tok.kind !== 'ident') continue;
    const next = peek(k + 1);
    if (GROUPING.has(tok.text)) {
      if (next?.kind !== 'punct' || next.text !== '(') {
        if (tok.text.startsWith('group_')) continue;
        throw new Error(`${tok.text} without a label list`);
      }
      k += 2;
      while (tokens[k]?.kind === 'ident') {
        grouping.add(tokens[k]!.text);
        k++;
        if (tokens[k]?.kind === 'punct' && tokens[k]!.text === ',') k++;
      }
      expect(k, ')');
      continue;
    }
    if (KEYWORDS.has(tok.text)) continue;
    if (next?.kind === 'punct' && next.text === '(') {
      if (!FUNCTIONS.has(tok.text) && !AGGREGATIONS.has(tok.text))
        throw new Error(`unknown function ${tok.text}`);
      functions.add(tok.text);
      stack.push('(');
      calls.push(tok.text);
      k++;
      continue;
    }
    if (AGGREGATIONS.has(tok.text) && next?.kind === 'ident' && GROUPING.has(next.text)) {
      functions.add(tok.text);
      continue;
    }
    // A metric name, with or without matchers.
    const matchers: Matcher[] = [];
    if (next?.kind === 'punct' && next.text === '{') {
      k += 2;
      for (;;) {
        const label = tokens[k];
        if (label?.kind === 'punct' && label.text === '}') break;
        const op = tokens[k + 1];
        const value = tokens[k + 2];
        if (label?.kind !== 'ident' || op?.kind !== 'punct' || value?.kind !== 'string')
          throw new Error(`bad matcher in the selector of ${tok.text}`);
        if (!['=', '!=', '=~', '!~'].includes(op.text)) throw new Error(`bad matcher operator ${op.text}`);
        matchers.push({ label: label.text, op: op.text, value: value.text });
        k += 3;
        if (tokens[k]?.kind === 'punct' && tokens[k]!.text === ',') k++;
      }
    }
    const after = tokens[k + 1];
    const direct = calls.length > 0 && after?.kind === 'range' ? calls[calls.length - 1] : undefined;
    selectors.push({ metric: tok.text, matchers, fn: direct });
  }
  if (stack.length > 0) throw new Error('unbalanced (');
  return { selectors, grouping, functions };
}

// ---- the dashboard -----------------------------------------------------------------------------------

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
  transformations?: { id: string; options: { renameByName?: Record<string, string> } }[];
}

interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  definition?: string;
  datasource?: { type: string; uid: string };
}

interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const text = readFileSync(DASHBOARD_PATH, 'utf8');
const dashboard = JSON.parse(text) as Dashboard;
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = allPanels.filter((p) => p.type !== 'row');
const variables = dashboard.templating.list;
const variableNames = new Set(variables.map((v) => v.name));

function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query.query;
}

/** `label_values(selector, label)` (or `label_values(label)`) as a selector expression and the label. */
function labelValuesQuery(q: string): { selector: string | undefined; label: string } {
  const m = /^label_values\(\s*(?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q.trim());
  if (!m) throw new Error(`not a label_values query: ${q}`);
  return { selector: m[1], label: m[2]! };
}

/** Every query of the dashboard: panel targets and variable queries, each with a name for messages. */
function queries(): { where: string; expr: string; legend: string | undefined; table: Panel | undefined }[] {
  const out: { where: string; expr: string; legend: string | undefined; table: Panel | undefined }[] = [];
  for (const p of queryPanels)
    for (const tg of p.targets ?? [])
      out.push({
        where: `panel ${p.id} "${p.title}" ${tg.refId}`,
        expr: tg.expr,
        legend: tg.legendFormat,
        table: p.type === 'table' ? p : undefined,
      });
  for (const v of variables.filter((x) => x.type === 'query')) {
    const { selector } = labelValuesQuery(variableQuery(v));
    if (selector !== undefined)
      out.push({ where: `variable ${v.name}`, expr: selector, legend: undefined, table: undefined });
  }
  return out;
}

// ---- the tests ---------------------------------------------------------------------------------------

t.test('the dashboard: uid, schema version, variables', async (t) => {
  t.equal(dashboard.uid, 'weft-mesh', 'a stable uid');
  t.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, 'a current schemaVersion');
  const ds = variables.find((v) => v.name === 'datasource');
  t.match(ds, { type: 'datasource', query: 'prometheus' }, 'a Prometheus data source variable');
  for (const name of ['namespace', 'workload', 'service']) {
    const v = variables.find((x) => x.name === name);
    t.equal(v?.type, 'query', `variable ${name}`);
    if (v === undefined) continue;
    t.same(v.datasource, { type: 'prometheus', uid: '${datasource}' }, `${name}: queries the chosen source`);
    t.doesNotThrow(() => labelValuesQuery(variableQuery(v)), `${name}: a label_values query`);
    if (v.definition !== undefined) t.equal(v.definition, variableQuery(v), `${name}: definition = query`);
  }
});

t.test('panels: unique ids, a target each, on the chosen data source, not overlapping', async (t) => {
  const ids = allPanels.map((p) => p.id);
  t.ok(
    ids.every((id) => Number.isInteger(id) && id > 0),
    'ids are positive integers',
  );
  t.same(
    ids.filter((id, i) => ids.indexOf(id) !== i),
    [],
    'no id is used twice',
  );
  t.ok(queryPanels.length >= 30, `${queryPanels.length} panels`);
  for (const p of queryPanels) {
    const what = `panel ${p.id} "${p.title}"`;
    t.ok((p.targets ?? []).length > 0, `${what}: has a target`);
    t.same(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `${what}: the datasource variable`);
    const refs = (p.targets ?? []).map((x) => x.refId);
    t.equal(new Set(refs).size, refs.length, `${what}: refIds are unique`);
    for (const tg of p.targets ?? []) {
      t.ok(tg.expr.trim().length > 0, `${what} ${tg.refId}: has an expression`);
      t.same(tg.datasource, p.datasource, `${what} ${tg.refId}: the panel's data source`);
    }
  }
  for (const p of allPanels) {
    const g = p.gridPos;
    t.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `panel ${p.id}: fits the grid`);
  }
  for (const [i, a] of allPanels.entries())
    for (const b of allPanels.slice(i + 1)) {
      const A = a.gridPos;
      const B = b.gridPos;
      const overlap = A.x < B.x + B.w && B.x < A.x + A.w && A.y < B.y + B.h && B.y < A.y + A.h;
      if (overlap) t.fail(`panels ${a.id} and ${b.id} overlap`);
    }
  const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
  for (const want of [
    /overview/i,
    /service/i,
    /inbound/i,
    /outbound/i,
    /TCP/,
    /polic/i,
    /reporter/i,
    /capture/i,
  ])
    t.ok(
      rows.some((r) => want.test(r)),
      `a row matching ${want}`,
    );
});

t.test('every query names metrics and labels Weft exports', async (t) => {
  const exported = [...(await registeredMetrics()), ...declaredMetrics('agent/main.ts')];
  const byName = new Map(exported.map((m) => [m.name, m]));
  const capture = byName.get('weft_capture_packets');
  t.match(
    capture,
    { type: 'gauge', from: 'agent/main.ts' },
    'the agent registers weft_capture_packets (read from agent/main.ts)',
  );
  t.same([...(capture?.labels ?? [])], ['counter'], 'weft_capture_packets is by counter');

  /** The exported metric a series name belongs to: a histogram's only through its _bucket/_sum/_count. */
  const resolve = (series: string): { metric: ExportedMetric; bucket: boolean } | undefined => {
    const direct = byName.get(series);
    if (direct && direct.type !== 'histogram' && direct.type !== 'summary')
      return { metric: direct, bucket: false };
    const m = /^(.*)_(bucket|sum|count)$/.exec(series);
    const base = m ? byName.get(m[1]!) : undefined;
    if (base && (base.type === 'histogram' || (base.type === 'summary' && m![2] !== 'bucket')))
      return { metric: base, bucket: m![2] === 'bucket' };
    return undefined;
  };

  const used = new Set<string>();
  for (const q of queries()) {
    let parsed: Parsed;
    try {
      parsed = parse(q.expr);
    } catch (err) {
      t.fail(`${q.where}: ${(err as Error).message}: ${q.expr}`);
      continue;
    }
    t.ok(parsed.selectors.length > 0, `${q.where}: selects a metric`);
    const labels = new Set(TARGET_LABELS);
    for (const s of parsed.selectors) {
      const r = resolve(s.metric);
      if (r === undefined) {
        t.fail(`${q.where}: ${s.metric} is not a metric Weft exports`);
        continue;
      }
      used.add(r.metric.name);
      for (const l of r.metric.labels) labels.add(l);
      if (r.bucket) labels.add('le');
      for (const m of s.matchers) {
        t.ok(
          r.metric.labels.has(m.label) || TARGET_LABELS.has(m.label),
          `${q.where}: ${s.metric} has the label ${m.label}`,
        );
        const allowed = LABEL_VALUES[m.label];
        if (allowed === undefined || m.value.includes('$')) continue;
        const values = m.op.endsWith('~') ? m.value.split('|') : [m.value];
        for (const v of values) t.ok(allowed.has(v), `${q.where}: ${m.label} "${v}" is a value Weft sets`);
      }
      if (s.fn !== undefined && RANGE_FUNCTIONS.has(s.fn)) {
        const cumulative =
          r.metric.type === 'counter' ||
          r.metric.type === 'histogram' ||
          r.metric.type === 'summary' ||
          CUMULATIVE_GAUGES.has(r.metric.name);
        t.ok(cumulative, `${q.where}: ${s.fn}() over ${s.metric}, a cumulative series`);
      }
    }
    for (const l of parsed.grouping)
      t.ok(labels.has(l), `${q.where}: groups by ${l}, a label of its metrics`);
    if (parsed.functions.has('histogram_quantile'))
      t.ok(parsed.grouping.has('le'), `${q.where}: histogram_quantile keeps le`);
    // A legend can only print labels the aggregation kept.
    for (const [, l] of (q.legend ?? '').matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g))
      t.ok(
        parsed.grouping.has(l!) || (parsed.grouping.size === 0 && labels.has(l!)),
        `${q.where}: the legend's {{${l}}} is kept by the query`,
      );
    // Variables it uses are the dashboard's (or Grafana's own $__…).
    for (const [, v] of q.expr.matchAll(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)/g))
      t.ok(v!.startsWith('__') || variableNames.has(v!), `${q.where}: $${v} is a dashboard variable`);
    if (q.table)
      for (const key of Object.keys(
        q.table.transformations?.find((x) => x.id === 'organize')?.options.renameByName ?? {},
      ))
        if (!/^(Time|Value( #[A-Z])?)$/.test(key))
          t.ok(parsed.grouping.has(key), `${q.where}: the table column ${key} is a grouping label`);
  }

  // Variable queries: the label whose values they list exists on their metric.
  for (const v of variables.filter((x) => x.type === 'query')) {
    const { selector, label } = labelValuesQuery(variableQuery(v));
    const metric = selector === undefined ? undefined : parse(selector).selectors[0]?.metric;
    const m = metric === undefined ? undefined : resolve(metric)?.metric;
    t.ok(m?.labels.has(label), `variable ${v.name}: ${metric ?? '(any)'} has the label ${label}`);
  }

  // The dashboard shows every metric the agent and the waypoint register.
  for (const m of exported) t.ok(used.has(m.name), `${m.name} (${m.from}) is shown on the dashboard`);
});

t.test('the PromQL checker itself', async (t) => {
  const p = parse(
    'sum by (le, a) (rate(x_bucket{b="1", c=~"$v"}[$__rate_interval])) / on (a) y or vector(0)',
  );
  t.same(
    p.selectors.map((s) => [s.metric, s.matchers.map((m) => m.label), s.fn]),
    [
      ['x_bucket', ['b', 'c'], 'rate'],
      ['y', [], undefined],
    ],
  );
  t.same([...p.grouping].sort(), ['a', 'le']);
  for (const bad of [
    'sum(rate(x[5m])',
    'sum(rate(x[5m])))',
    'rate(x{a="1"[5m])',
    'rate(x{a=1}[5m])',
    'rate(x[5 m])',
    'rat(x[5m])',
    'x{a="1"',
    'sum by a (x)',
  ])
    t.throws(() => parse(bad), `refuses ${bad}`);
  t.same(labelValuesQuery('label_values(m{a=~"$b"}, c)'), { selector: 'm{a=~"$b"}', label: 'c' });
  t.same(labelValuesQuery('label_values(c)'), { selector: undefined, label: 'c' });
});
