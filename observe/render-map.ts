// A ServiceMap for people: an aligned text table (the terminal), a standalone SVG graph, and an HTML page
// holding both. Every output is deterministic (same map, same bytes) and escapes every name: workload
// and Service names come from the cluster, which the reader of the page need not trust.
//
// The graph is layered left to right by dependency depth: callers nobody calls sit in column 0, and each
// node one column right of its deepest caller (edges that close a cycle are left out of the depth and
// drawn as loops below the boxes). Within a column, nodes are ordered by the mean row of their callers,
// which keeps most edges from crossing.
import { el, esc, short } from '../bench/report/svg.js';
import type { MapEdge, MapNode, ServiceMap } from './service-map.js';

/** Control characters would corrupt a terminal and are not allowed in XML even escaped. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;

function printable(s: string): string {
  return s.replace(CONTROL, '\uFFFD');
}

/** How a node is named in the table and in the graph's tooltips. */
export function nodeLabel(node: MapNode): string {
  const qualified = node.namespace === undefined ? node.name : `${node.namespace}/${node.name}`;
  switch (node.kind) {
    case 'workload':
    case 'world':
    case 'address':
      return printable(qualified);
    case 'service':
      return printable(`svc ${qualified}`);
    case 'waypoint':
      return printable(`waypoint ${qualified}`);
    case 'identity':
      return printable(`identity ${qualified}`);
  }
}

function unitShort(edge: MapEdge): string {
  return edge.unit === 'requests' ? 'req' : 'conn';
}

/** A duration: `0.42ms`, `12ms`, `1.23s`. */
export function formatMs(ms: number): string {
  return ms >= 1000 ? `${short(ms / 1000)}s` : `${short(ms)}ms`;
}

function formatRate(edge: MapEdge): string {
  return edge.ratePerSecond === undefined ? '–' : `${short(edge.ratePerSecond)} ${unitShort(edge)}/s`;
}

function formatCount(edge: MapEdge): string {
  return `${edge.count} ${unitShort(edge)}${edge.active > 0 ? ` (${edge.active} open)` : ''}`;
}

function formatErrors(edge: MapEdge): string {
  return edge.errors === 0 ? '0' : `${short(edge.errorRate * 100)}% (${edge.errors})`;
}

/** p99 request latency for L7 edges; for L4 edges the connection duration, marked as such. */
function formatP99(edge: MapEdge): string {
  if (edge.p99Ms === undefined) return '–';
  return edge.unit === 'requests' ? formatMs(edge.p99Ms) : `${formatMs(edge.p99Ms)} (conn)`;
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${short(n / 1024)} KiB`;
  if (n < 1024 ** 3) return `${short(n / 1024 / 1024)} MiB`;
  return `${short(n / 1024 ** 3)} GiB`;
}

export interface MapTable {
  readonly headers: readonly string[];
  /** Which columns hold numbers (right-aligned). */
  readonly numeric: readonly boolean[];
  /** One row per edge, in the map's order; cells are printable (no control characters) but not escaped. */
  readonly rows: readonly (readonly string[])[];
}

/** The table the text and the HTML both show, a row per edge; VIA only when an edge went via a waypoint. */
export function serviceMapTable(map: ServiceMap): MapTable {
  const byId = new Map(map.nodes.map((n) => [n.id, n]));
  const label = (id: string): string => {
    const node = byId.get(id);
    return node === undefined ? printable(id) : nodeLabel(node);
  };
  const withVia = map.edges.some((e) => e.via !== undefined);
  const headers = ['SOURCE', 'DESTINATION', 'PROTO', ...(withVia ? ['VIA'] : [])];
  const numeric = headers.map(() => false);
  headers.push('COUNT', 'RATE', 'ERRORS', 'DENIED', 'P99');
  numeric.push(true, true, true, true, true);
  const rows = map.edges.map((e) => [
    label(e.source),
    label(e.destination),
    e.protocol,
    ...(withVia ? [e.via === undefined ? '' : printable(e.via)] : []),
    formatCount(e),
    formatRate(e),
    formatErrors(e),
    String(e.denied),
    formatP99(e),
  ]);
  return { headers, numeric, rows };
}

function windowText(map: ServiceMap): string {
  if (map.fromMs === undefined || map.toMs === undefined) return 'no flows';
  const from = new Date(map.fromMs).toISOString();
  const to = new Date(map.toMs).toISOString();
  return (
    `${map.edges.length} edge${map.edges.length === 1 ? '' : 's'} from ${map.counted} of ${map.events} ` +
    `events, ${from} to ${to}, rates over ${formatMs(map.windowMs)}`
  );
}

/** The map as aligned columns, for a terminal. */
export function renderServiceMapText(map: ServiceMap): string {
  const table = serviceMapTable(map);
  const all = [table.headers, ...table.rows];
  const widths = table.headers.map((_, c) => Math.max(...all.map((r) => [...(r[c] ?? '')].length)));
  const pad = (cell: string, c: number): string => {
    const fill = ' '.repeat(Math.max(0, (widths[c] ?? 0) - [...cell].length));
    return table.numeric[c] === true ? fill + cell : cell + fill;
  };
  const lines = [`service map: ${windowText(map)}`];
  if (table.rows.length > 0)
    for (const row of all)
      lines.push(
        row
          .map((cell, c) => pad(cell, c))
          .join('  ')
          .trimEnd(),
      );
  return lines.join('\n') + '\n';
}

// ---- the graph ---------------------------------------------------------------------------------------

const BOX_HEIGHT = 42;
const MIN_BOX_WIDTH = 130;
const MAX_BOX_WIDTH = 250;
/** A character's width at 12 px, estimated (no font metrics here), for box sizes. */
const CHAR_WIDTH = 7;
/** Room between columns for the edge labels. */
const COLUMN_GAP = 260;
const ROW_GAP = 46;
const MARGIN = 24;
const TITLE_HEIGHT = 36;
/** Room under the boxes for edges that point back to an earlier column. */
const LOOP_ROOM = 70;
const LEGEND_HEIGHT = 30;
const LABEL_HEIGHT = 16;
/** A character's width at the labels' 11 px. */
const LABEL_CHAR_WIDTH = 6.2;

const COLOURS = {
  ok: '#6b7280',
  error: '#d97706',
  denied: '#dc2626',
} as const;
type EdgeState = keyof typeof COLOURS;

const NODE_STYLE: Readonly<Record<MapNode['kind'], { fill: string; stroke: string }>> = {
  workload: { fill: '#eff6ff', stroke: '#2563eb' },
  service: { fill: '#f5f3ff', stroke: '#7c3aed' },
  waypoint: { fill: '#ecfdf5', stroke: '#059669' },
  identity: { fill: '#fefce8', stroke: '#a16207' },
  world: { fill: '#f3f4f6', stroke: '#6b7280' },
  address: { fill: '#f3f4f6', stroke: '#6b7280' },
};

function edgeState(edge: MapEdge): EdgeState {
  if (edge.denied > 0) return 'denied';
  return edge.errors > 0 ? 'error' : 'ok';
}

interface Placed {
  readonly node: MapNode;
  readonly column: number;
  readonly row: number;
}

/** Column per node: longest caller chain, ignoring the edges that close cycles. */
function columns(map: ServiceMap): Map<string, number> {
  const out = new Map<string, string[]>();
  for (const n of map.nodes) out.set(n.id, []);
  for (const e of map.edges)
    if (e.source !== e.destination && !out.get(e.source)?.includes(e.destination))
      out.get(e.source)?.push(e.destination);
  for (const list of out.values()) list.sort();
  // Depth-first from the callers nobody calls, then from the rest, each in id order: an edge to a node
  // still on the stack closes a cycle. Starting from the roots leaves out the edge pointing back at them.
  const state = new Map<string, 'open' | 'done'>();
  const back = new Set<string>();
  const visit = (id: string): void => {
    state.set(id, 'open');
    for (const next of out.get(id) ?? []) {
      const s = state.get(next);
      if (s === 'open') back.add(`${id}\n${next}`);
      else if (s === undefined) visit(next);
    }
    state.set(id, 'done');
  };
  const called = new Set(map.edges.filter((e) => e.source !== e.destination).map((e) => e.destination));
  const roots = map.nodes.filter((n) => !called.has(n.id));
  for (const n of [...roots, ...map.nodes]) if (!state.has(n.id)) visit(n.id);
  // Longest path over what is left, a DAG, in topological order (Kahn, ties by id).
  const indegree = new Map(map.nodes.map((n) => [n.id, 0]));
  for (const [from, list] of out)
    for (const to of list) if (!back.has(`${from}\n${to}`)) indegree.set(to, (indegree.get(to) ?? 0) + 1);
  const column = new Map(map.nodes.map((n) => [n.id, 0]));
  const ready = map.nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  while (ready.length > 0) {
    ready.sort();
    const id = ready.shift() as string;
    for (const to of out.get(id) ?? []) {
      if (back.has(`${id}\n${to}`)) continue;
      column.set(to, Math.max(column.get(to) ?? 0, (column.get(id) ?? 0) + 1));
      const left = (indegree.get(to) ?? 0) - 1;
      indegree.set(to, left);
      if (left === 0) ready.push(to);
    }
  }
  return column;
}

function layout(map: ServiceMap): Map<string, Placed> {
  const column = columns(map);
  const callers = new Map<string, string[]>();
  for (const e of map.edges) {
    const list = callers.get(e.destination);
    if (list === undefined) callers.set(e.destination, [e.source]);
    else list.push(e.source);
  }
  const placed = new Map<string, Placed>();
  const width = Math.max(0, ...column.values()) + 1;
  for (let c = 0; c < width; c++) {
    const inColumn = map.nodes.filter((n) => column.get(n.id) === c);
    const weight = (n: MapNode): number => {
      const rows = (callers.get(n.id) ?? [])
        .map((id) => placed.get(id)?.row)
        .filter((r): r is number => r !== undefined);
      return rows.length === 0 ? Number.POSITIVE_INFINITY : rows.reduce((a, b) => a + b, 0) / rows.length;
    };
    const weights = new Map(inColumn.map((n) => [n.id, weight(n)]));
    inColumn.sort(
      (a, b) =>
        (weights.get(a.id) ?? 0) - (weights.get(b.id) ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
    inColumn.forEach((node, row) => placed.set(node.id, { node, column: c, row }));
  }
  return placed;
}

function truncate(s: string, chars: number): string {
  const cps = [...s];
  return cps.length <= chars ? s : cps.slice(0, Math.max(1, chars - 1)).join('') + '…';
}

type Point = readonly [number, number];

type Curve = readonly [Point, Point, Point, Point];

/** The point at `t` along a cubic Bézier. */
function bezierAt([p0, p1, p2, p3]: Curve, t: number): Point {
  const u = 1 - t;
  const a = u * u * u;
  const b = 3 * u * u * t;
  const c = 3 * u * t * t;
  const d = t * t * t;
  return [a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0], a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]];
}

/** Where the curve crosses `x` (it runs left to right), to the nearest of 64 steps. */
function pointAtX(curve: Curve, x: number): Point {
  let best = bezierAt(curve, 0.5);
  for (let i = 0; i <= 64; i++) {
    const p = bezierAt(curve, i / 64);
    if (Math.abs(p[0] - x) < Math.abs(best[0] - x)) best = p;
  }
  return best;
}

interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** Moves a label down until it overlaps no label placed before it. */
function freeSpot(wanted: Box, taken: Box[]): Box {
  let box = wanted;
  while (taken.some((t) => overlaps(t, box))) box = { ...box, y: box.y + LABEL_HEIGHT + 1 };
  taken.push(box);
  return box;
}

/** A coordinate to 0.1 px. */
function n1(v: number): string {
  return String(Math.round(v * 10) / 10);
}

function xy(p: Point): string {
  return `${n1(p[0])},${n1(p[1])}`;
}

function edgeTitle(edge: MapEdge, label: (id: string) => string): string {
  const parts = [
    `${label(edge.source)} → ${label(edge.destination)}`,
    `${edge.protocol}, ${formatCount(edge)}, ${formatRate(edge)}`,
    `errors ${formatErrors(edge)}, denied ${edge.denied}, p99 ${formatP99(edge)}`,
    `bytes ${formatBytes(edge.requestBytes)} sent, ${formatBytes(edge.responseBytes)} received`,
  ];
  if (edge.via !== undefined) parts.push(`via waypoint ${printable(edge.via)}`);
  if (edge.services.length > 0) parts.push(`services ${printable(edge.services.join(', '))}`);
  return parts.join('\n');
}

function edgeText(edge: MapEdge): string {
  const rate = edge.ratePerSecond === undefined ? formatCount(edge) : formatRate(edge);
  const parts = [rate];
  if (edge.errors > 0) parts.push(`${short(edge.errorRate * 100)}% err`);
  if (edge.denied > 0) parts.push(`${edge.denied} denied`);
  if (edge.p99Ms !== undefined)
    parts.push(edge.unit === 'requests' ? `p99 ${formatMs(edge.p99Ms)}` : `conn p99 ${formatMs(edge.p99Ms)}`);
  return parts.join(' · ');
}

interface Geometry {
  readonly boxWidth: number;
  /** The bottom of the lowest row of boxes. */
  readonly graphBottom: number;
}

function boxX(g: Geometry, p: Placed): number {
  return MARGIN + p.column * (g.boxWidth + COLUMN_GAP);
}

function boxY(p: Placed): number {
  return TITLE_HEIGHT + p.row * (BOX_HEIGHT + ROW_GAP);
}

/**
 * The arrow from `s` to `d` as a cubic Bézier: right side to left side for an edge to a later column, a
 * loop beside the box for a self-call, and under the boxes, bottom to bottom, for an edge back to an
 * earlier (or the same) column. `fan` separates several edges between one pair.
 */
function edgeCurve(g: Geometry, s: Placed, d: Placed, fan: number): Curve {
  if (s === d) {
    const right = boxX(g, s) + g.boxWidth;
    const top = boxY(s);
    return [
      [right, top + 10],
      [right + 60 + fan, top - 24],
      [right + 60 + fan, top + BOX_HEIGHT + 24],
      [right, top + BOX_HEIGHT - 10],
    ];
  }
  if (d.column > s.column) {
    const p0: Point = [boxX(g, s) + g.boxWidth, boxY(s) + BOX_HEIGHT / 2 + fan / 2];
    const p3: Point = [boxX(g, d), boxY(d) + BOX_HEIGHT / 2 + fan / 2];
    const dx = (p3[0] - p0[0]) / 2;
    return [p0, [p0[0] + dx, p0[1] + fan], [p3[0] - dx, p3[1] + fan], p3];
  }
  const p0: Point = [boxX(g, s) + g.boxWidth / 2 + fan, boxY(s) + BOX_HEIGHT];
  const p3: Point = [boxX(g, d) + g.boxWidth / 2 - fan, boxY(d) + BOX_HEIGHT];
  // Deep enough that the curve (which reaches ¾ of the way to its control points) clears every box.
  const start = Math.max(p0[1], p3[1]);
  const below = start + (g.graphBottom + 24 + fan - start) / 0.75;
  return [p0, [p0[0], below], [p3[0], below], p3];
}

/** The map as one standalone SVG document (no scripts, nothing fetched). */
export function renderServiceMapSvg(map: ServiceMap): string {
  const placed = layout(map);
  const label = (id: string): string => {
    const p = placed.get(id);
    return p === undefined ? printable(id) : nodeLabel(p.node);
  };
  const longest = Math.max(0, ...map.nodes.map((n) => [...printable(n.name)].length));
  const boxWidth = Math.min(MAX_BOX_WIDTH, Math.max(MIN_BOX_WIDTH, longest * CHAR_WIDTH + 20));
  const chars = Math.floor((boxWidth - 20) / CHAR_WIDTH);
  const columnsUsed = Math.max(1, ...[...placed.values()].map((p) => p.column + 1));
  const rowsUsed = Math.max(1, ...[...placed.values()].map((p) => p.row + 1));
  const hasBackEdges = map.edges.some((e) => {
    const s = placed.get(e.source);
    const d = placed.get(e.destination);
    return s !== undefined && d !== undefined && d.column <= s.column && e.source !== e.destination;
  });
  const width = Math.max(
    420,
    MARGIN * 2 + columnsUsed * boxWidth + (columnsUsed - 1) * COLUMN_GAP + (columnsUsed === 1 ? 120 : 0),
  );
  const graphBottom = TITLE_HEIGHT + rowsUsed * BOX_HEIGHT + (rowsUsed - 1) * ROW_GAP;
  const geometry: Geometry = { boxWidth, graphBottom };
  const x = (p: Placed): number => boxX(geometry, p);
  const y = (p: Placed): number => boxY(p);

  const parts: string[] = [el('title', {}, esc(`weft service map: ${windowText(map)}`))];
  const markers = (Object.keys(COLOURS) as EdgeState[]).map((state) =>
    el(
      'marker',
      {
        id: `weft-map-arrow-${state}`,
        viewBox: '0 0 10 10',
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: 'auto-start-reverse',
      },
      el('path', { d: 'M0,0 L10,5 L0,10 z', fill: COLOURS[state] }),
    ),
  );
  parts.push(el('defs', {}, markers.join('')));
  parts.push(el('text', { x: MARGIN, y: 22, 'font-weight': 'bold' }, esc(`Service map: ${windowText(map)}`)));
  if (map.edges.length === 0)
    parts.push(el('text', { x: MARGIN, y: TITLE_HEIGHT + 20, fill: COLOURS.ok }, 'no flows observed'));

  // Edges first, so boxes are drawn over their ends; several edges between one pair fan out.
  const pairIndex = new Map<string, number>();
  const edgeParts: string[] = [];
  const labelParts: string[] = [];
  // Labels move down past boxes as well as past each other.
  const labelBoxes: Box[] = [...placed.values()].map((p) => ({
    x: x(p),
    y: y(p),
    width: boxWidth,
    height: BOX_HEIGHT,
  }));
  for (const edge of map.edges) {
    const s = placed.get(edge.source);
    const d = placed.get(edge.destination);
    if (s === undefined || d === undefined) continue;
    const pair = `${edge.source}\n${edge.destination}`;
    const k = pairIndex.get(pair) ?? 0;
    pairIndex.set(pair, k + 1);
    const curve = edgeCurve(geometry, s, d, k * 14);
    const [p0, p1, p2, p3] = curve;
    const state = edgeState(edge);
    const d3 = `M${xy(p0)} C${xy(p1)} ${xy(p2)} ${xy(p3)}`;
    const title = el('title', {}, esc(edgeTitle(edge, label)));
    const path = el('path', {
      d: d3,
      fill: 'none',
      stroke: COLOURS[state],
      'stroke-width': state === 'ok' ? 1.5 : 2,
      ...(edge.via === undefined ? {} : { 'stroke-dasharray': '6 3' }),
      'marker-end': `url(#weft-map-arrow-${state})`,
    });
    edgeParts.push(el('g', { class: `edge edge-${state} edge-${edge.unit}` }, title + path));
    // A forward edge is labelled in the gap after its source, where no box is; others at their middle.
    const [cx, cy] =
      d.column > s.column ? pointAtX(curve, x(s) + boxWidth + COLUMN_GAP / 2) : bezierAt(curve, 0.5);
    const text = edgeText(edge);
    const textWidth = [...text].length * LABEL_CHAR_WIDTH + 8;
    const spot = freeSpot(
      { x: cx - textWidth / 2, y: cy - LABEL_HEIGHT + 3, width: textWidth, height: LABEL_HEIGHT },
      labelBoxes,
    );
    const mx = spot.x + textWidth / 2;
    const my = spot.y + LABEL_HEIGHT - 3;
    labelParts.push(
      el(
        'g',
        { class: `edge-label edge-${state}` },
        title +
          el('rect', {
            x: spot.x,
            y: spot.y,
            width: textWidth,
            height: LABEL_HEIGHT,
            rx: 3,
            fill: '#ffffff',
            'fill-opacity': 0.85,
          }) +
          el(
            'text',
            { x: mx, y: my - 1, 'text-anchor': 'middle', 'font-size': 11, fill: COLOURS[state] },
            esc(text),
          ),
      ),
    );
  }
  parts.push(...edgeParts);

  for (const p of [...placed.values()].sort((a, b) => a.column - b.column || a.row - b.row)) {
    const style = NODE_STYLE[p.node.kind];
    const name = truncate(printable(p.node.name), chars);
    const sub =
      p.node.kind === 'workload'
        ? (p.node.namespace ?? '')
        : p.node.namespace === undefined
          ? p.node.kind
          : `${p.node.kind} · ${p.node.namespace}`;
    parts.push(
      el(
        'g',
        { class: `node node-${p.node.kind}` },
        el('title', {}, esc(nodeLabel(p.node))) +
          el('rect', {
            x: x(p),
            y: y(p),
            width: boxWidth,
            height: BOX_HEIGHT,
            rx: 6,
            fill: style.fill,
            stroke: style.stroke,
          }) +
          el('text', { x: x(p) + 10, y: y(p) + 17, 'font-weight': 'bold' }, esc(name)) +
          el(
            'text',
            { x: x(p) + 10, y: y(p) + 33, 'font-size': 11, fill: '#4b5563' },
            esc(truncate(printable(sub), chars + 2)),
          ),
      ),
    );
  }
  parts.push(...labelParts);

  const contentBottom = Math.max(
    graphBottom + (hasBackEdges ? LOOP_ROOM : 16),
    ...labelBoxes.map((b) => b.y + b.height + 8),
  );
  const height = contentBottom + LEGEND_HEIGHT + MARGIN;
  const legendY = height - MARGIN - 8;
  const legend: [EdgeState, string][] = [
    ['ok', 'no errors'],
    ['error', 'errors'],
    ['denied', 'denials'],
  ];
  legend.forEach(([state, text], i) => {
    const lx = MARGIN + i * 120;
    parts.push(
      el('line', {
        x1: lx,
        y1: legendY - 4,
        x2: lx + 24,
        y2: legendY - 4,
        stroke: COLOURS[state],
        'stroke-width': 2,
      }),
      el('text', { x: lx + 30, y: legendY, 'font-size': 11 }, esc(text)),
    );
  });
  parts.push(
    el('line', {
      x1: MARGIN + 360,
      y1: legendY - 4,
      x2: MARGIN + 384,
      y2: legendY - 4,
      stroke: COLOURS.ok,
      'stroke-width': 2,
      'stroke-dasharray': '6 3',
    }),
    el('text', { x: MARGIN + 390, y: legendY, 'font-size': 11 }, 'via a waypoint (requests or its TCP)'),
  );

  return el(
    'svg',
    {
      xmlns: 'http://www.w3.org/2000/svg',
      class: 'weft-service-map',
      viewBox: `0 0 ${n1(width)} ${n1(height)}`,
      width,
      height,
      role: 'img',
      'font-family': 'system-ui, sans-serif',
      'font-size': 12,
    },
    parts.join(''),
  );
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; }
body { color: #111827; }
h1 { font-size: 1.5rem; }
table { border-collapse: collapse; margin: .8rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #e5e7eb; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f9fafb; }
td.num { text-align: right; }
tr.error td { color: #b45309; }
tr.denied td { color: #b91c1c; }
svg { display: block; max-width: 100%; height: auto; margin: .8rem 0; }
`;

/** One self-contained HTML page (inline CSS and SVG, no scripts): the graph, then the table. */
export function renderServiceMapHtml(map: ServiceMap, title = 'Weft service map'): string {
  const table = serviceMapTable(map);
  const head = `<tr>${table.headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = table.rows.map((row, i) => {
    const edge = map.edges[i];
    const state = edge === undefined ? 'ok' : edgeState(edge);
    const cells = row
      .map((cell, c) => `<td${table.numeric[c] === true ? ' class="num"' : ''}>${esc(cell)}</td>`)
      .join('');
    return `<tr class="${state}">${cells}</tr>`;
  });
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${esc(printable(title))}</title>`,
    `<style>${CSS}</style>`,
    '</head>',
    '<body>',
    `<h1>${esc(printable(title))}</h1>`,
    `<p>${esc(windowText(map))}. L7 edges count requests through a waypoint; L4 edges count connections, ` +
      'and their p99 is how long connections lived.</p>',
    renderServiceMapSvg(map),
    '<table>',
    `<thead>${head}</thead>`,
    '<tbody>',
    ...body,
    '</tbody>',
    '</table>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
