// Hand-written SVG for the HTML report: escaped elements, linear and log axes with "nice" ticks, a line
// plot and a horizontal bar chart. Everything is built with `el`, so the output is well-formed XML.

/** Escapes text for XML/HTML content and double- or single-quoted attributes. */
export function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** One element; `children` is markup (already escaped), none makes it self-closing. */
export function el(
  name: string,
  attrs: Readonly<Record<string, string | number>>,
  children?: string,
): string {
  const a = Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${esc(typeof v === 'number' ? coord(v) : v)}"`)
    .join('');
  return children === undefined ? `<${name}${a}/>` : `<${name}${a}>${children}</${name}>`;
}

/** A coordinate, to 0.1 px. */
function coord(v: number): string {
  return String(Math.round(v * 10) / 10);
}

export interface Tick {
  readonly value: number;
  readonly label: string;
}

export interface Axis {
  readonly min: number;
  readonly max: number;
  readonly log: boolean;
  readonly ticks: readonly Tick[];
}

/** A short number: up to 3 significant digits, no trailing zeros. */
export function short(v: number): string {
  return String(Number(v.toPrecision(3)));
}

/** 0 … a round maximum at or above `max`, with 4–6 ticks at 1, 2 or 5 × 10^n. */
export function linearAxis(max: number): Axis {
  const top = max > 0 ? max : 1;
  const raw = top / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => top / s <= 6) ?? 10 * mag;
  const end = Math.ceil(top / step - 1e-9) * step;
  const ticks: Tick[] = [];
  for (let i = 0; i * step <= end + step / 1e6; i++) ticks.push({ value: i * step, label: short(i * step) });
  return { min: 0, max: end, log: false, ticks };
}

/** Whole decades around min … max (both > 0), ticks at 1, 2 and 5 × 10^n. */
export function logAxis(min: number, max: number): Axis {
  const lo = 10 ** Math.floor(Math.log10(min));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(max, min * 10)));
  const ticks: Tick[] = [];
  for (let d = lo; d < hi * 1.001; d *= 10)
    for (const m of [1, 2, 5]) if (d * m <= hi * 1.001) ticks.push({ value: d * m, label: short(d * m) });
  return { min: lo, max: hi, log: true, ticks };
}

/** Where `v` falls between pixels `from` (axis min) and `to` (axis max). */
export function project(axis: Axis, v: number, from: number, to: number): number {
  const f = axis.log
    ? (Math.log10(Math.max(v, axis.min)) - Math.log10(axis.min)) /
      (Math.log10(axis.max) - Math.log10(axis.min))
    : (v - axis.min) / (axis.max - axis.min || 1);
  return from + Math.min(1, Math.max(0, f)) * (to - from);
}

export interface Series {
  readonly label: string;
  readonly colour: string;
  /** [x, y] in axis units. */
  readonly points: readonly (readonly [number, number])[];
}

export interface LinePlot {
  readonly title: string;
  readonly className: string;
  readonly x: Axis;
  readonly y: Axis;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
}

const FONT = { 'font-family': 'system-ui, sans-serif', 'font-size': 12 };

/** Axes with gridlines and tick labels, one polyline per series, a legend on the right. */
export function linePlot(p: LinePlot): string {
  const w = 760;
  const h = 380;
  const m = { left: 64, right: 150, top: 34, bottom: 50 };
  const [x0, x1, y0, y1] = [m.left, w - m.right, h - m.bottom, m.top];
  const parts: string[] = [el('title', {}, esc(p.title))];
  parts.push(el('text', { x: m.left, y: 20, 'font-weight': 'bold' }, esc(p.title)));
  for (const t of p.x.ticks) {
    const x = project(p.x, t.value, x0, x1);
    parts.push(el('line', { x1: x, y1: y0, x2: x, y2: y1, stroke: '#e5e7eb' }));
    parts.push(el('text', { x, y: y0 + 16, 'text-anchor': 'middle' }, esc(t.label)));
  }
  for (const t of p.y.ticks) {
    const y = project(p.y, t.value, y0, y1);
    parts.push(el('line', { x1: x0, y1: y, x2: x1, y2: y, stroke: '#e5e7eb' }));
    parts.push(el('text', { x: x0 - 6, y: y + 4, 'text-anchor': 'end' }, esc(t.label)));
  }
  parts.push(el('rect', { x: x0, y: y1, width: x1 - x0, height: y0 - y1, fill: 'none', stroke: '#9ca3af' }));
  parts.push(el('text', { x: (x0 + x1) / 2, y: h - 12, 'text-anchor': 'middle' }, esc(p.xLabel)));
  parts.push(
    el(
      'text',
      {
        x: 16,
        y: (y0 + y1) / 2,
        'text-anchor': 'middle',
        transform: `rotate(-90 16 ${coord((y0 + y1) / 2)})`,
      },
      esc(p.yLabel),
    ),
  );
  p.series.forEach((s, i) => {
    const points = s.points
      .map(([x, y]) => `${coord(project(p.x, x, x0, x1))},${coord(project(p.y, y, y0, y1))}`)
      .join(' ');
    parts.push(
      el('polyline', { class: 'series', points, fill: 'none', stroke: s.colour, 'stroke-width': 2 }),
    );
    const ly = m.top + 10 + i * 20;
    parts.push(el('line', { x1: x1 + 14, y1: ly, x2: x1 + 38, y2: ly, stroke: s.colour, 'stroke-width': 3 }));
    parts.push(el('text', { x: x1 + 44, y: ly + 4 }, esc(s.label)));
  });
  return svg(p.className, w, h, parts);
}

export interface Bar {
  readonly label: string;
  readonly colour: string;
  /** Undefined draws no bar, only the text (e.g. `error`). */
  readonly value: number | undefined;
  /** Written at the end of the bar. */
  readonly text: string;
}

/** Horizontal bars from zero, one per row, the value written at each bar's end. */
export function barChart(title: string, className: string, bars: readonly Bar[]): string {
  const w = 760;
  const rowH = 30;
  const m = { left: 110, right: 130, top: 34, bottom: 10 };
  const h = m.top + bars.length * rowH + m.bottom;
  const max = Math.max(0, ...bars.map((b) => b.value ?? 0));
  const scale = (v: number): number => (max > 0 ? (v / max) * (w - m.left - m.right) : 0);
  const parts: string[] = [el('title', {}, esc(title))];
  parts.push(el('text', { x: 10, y: 20, 'font-weight': 'bold' }, esc(title)));
  bars.forEach((b, i) => {
    const y = m.top + i * rowH;
    const len = b.value === undefined ? 0 : scale(b.value);
    parts.push(el('text', { x: m.left - 8, y: y + rowH / 2 + 4, 'text-anchor': 'end' }, esc(b.label)));
    if (b.value !== undefined)
      parts.push(
        el('rect', { class: 'bar', x: m.left, y: y + 4, width: len, height: rowH - 8, fill: b.colour }),
      );
    parts.push(el('text', { x: m.left + len + 6, y: y + rowH / 2 + 4 }, esc(b.text)));
  });
  return svg(className, w, h, parts);
}

function svg(className: string, w: number, h: number, parts: readonly string[]): string {
  return el(
    'svg',
    {
      xmlns: 'http://www.w3.org/2000/svg',
      class: className,
      viewBox: `0 0 ${w} ${h}`,
      width: w,
      height: h,
      role: 'img',
      ...FONT,
    },
    parts.join(''),
  );
}
