// observe/render-map.ts: the text table, the SVG graph (well-formed XML by an independent parser, every
// name escaped, same map same bytes) and the HTML page holding both.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import type { FlowEvent } from '../../core/flows/event.js';
import {
  formatMs,
  renderServiceMapHtml,
  renderServiceMapSvg,
  renderServiceMapText,
  serviceMapTable,
} from '../../observe/render-map.js';
import { buildServiceMap } from '../../observe/service-map.js';
import { connection, PODS, request, T0, waypointLegs, type PodRef } from './flows.js';

const PYTHON = '/usr/bin/python3';

/** Parses `xml` with Python's xml.etree (not our code): the root tag and element count, or the error. */
function parseXml(xml: string): { ok: boolean; out: string } {
  const script =
    'import sys, xml.etree.ElementTree as E\n' +
    'r = E.fromstring(sys.stdin.buffer.read())\n' +
    'print(r.tag, sum(1 for _ in r.iter()))\n';
  const result = spawnSync(PYTHON, ['-c', script], { input: xml, encoding: 'utf8' });
  return { ok: result.status === 0, out: (result.stdout + result.stderr).trim() };
}

function shopEvents(): FlowEvent[] {
  return [
    ...Array.from({ length: 10 }, (_, i) =>
      request(PODS.frontend, PODS.web0, { time: T0 + i * 1000, durationMs: 12, status: i === 0 ? 503 : 200 }),
    ),
    ...connection(PODS.web0, PODS.db, 5432, { time: T0 + 500, durationMs: 2500 }),
    ...connection(PODS.old, PODS.web1, 8080, { time: T0 + 600, verdict: 'DENIED' }),
    ...connection(PODS.db, PODS.web0, 8080, { time: T0 + 700 }),
    ...connection(PODS.web0, '93.184.216.34', 443, { time: T0 + 900 }),
    ...waypointLegs(PODS.frontend, PODS.web0, 8080, { time: T0 + 9000 }),
  ];
}

t.test('text: one aligned row per edge', async (t) => {
  const map = buildServiceMap(shopEvents());
  const text = renderServiceMapText(map);
  const lines = text.trimEnd().split('\n');
  t.match(lines[0], /^service map: 5 edges from 14 of 19 events, 2026-01-01T12:00:00.000Z to /);
  t.match(lines[1], /^SOURCE +DESTINATION +PROTO +VIA +COUNT +RATE +ERRORS +DENIED +P99$/);
  t.equal(lines.length, 2 + map.edges.length);
  const row = lines.find((l) => l.startsWith('shop/frontend'));
  t.match(row, /shop\/frontend +shop\/web +http +shop\/waypoint +10 req +1\.11 req\/s +10% \(1\) +0 +12ms/);
  t.match(
    lines.find((l) => l.startsWith('legacy/old')),
    /1 conn .* 100% \(1\) +1 +100ms \(conn\)$/,
  );
  t.match(text, /shop\/web +world +tcp/);
  const dbRow = lines.find((l) => l.startsWith('shop/web ') && l.includes('data/db'));
  t.match(dbRow, /2\.5s \(conn\)$/, 'L4 p99 is the connection duration, and says so');
  // Right-aligned numbers: every row ends its RATE column at the same place as the header.
  const end = (l: string, header: string): number => l.indexOf(header) + header.length;
  const rateEnd = end(lines[1] as string, 'RATE');
  for (const l of lines.slice(2)) t.match(l.slice(0, rateEnd), /\/s$/, 'rates line up');
  t.equal(renderServiceMapText(buildServiceMap([])), 'service map: no flows\n');
});

t.test('formatMs', async (t) => {
  t.plan(4);
  t.equal(formatMs(0.4213), '0.421ms');
  t.equal(formatMs(12), '12ms');
  t.equal(formatMs(999), '999ms');
  t.equal(formatMs(1234), '1.23s');
});

const HOSTILE: PodRef = {
  namespace: 'shop',
  pod: '<script>alert("x")</script>',
  workload: '<script>alert("x")</script>&\'"\u0001\u001b[31m',
  ip: '10.1.1.66',
  serviceAccount: 'evil',
  node: 'node-1',
};

/** Skips a test that needs the independent XML parser when it is missing. */
const NEEDS_PYTHON = {
  skip: existsSync(PYTHON) ? false : `${PYTHON} is not installed: no independent XML parser`,
};

t.test('svg: well-formed, escaped, deterministic, layered by depth', NEEDS_PYTHON, async (t) => {
  const events = [...shopEvents(), ...connection(HOSTILE, PODS.web0, 8080, { verdict: 'ERROR' })];
  const map = buildServiceMap(events);
  const svg = renderServiceMapSvg(map);
  const parsed = parseXml(svg);
  t.ok(parsed.ok, `parses as XML: ${parsed.out}`);
  t.match(parsed.out, /^\{http:\/\/www\.w3\.org\/2000\/svg\}svg \d+$/);
  t.notMatch(svg, /<script/, 'no markup from names');
  // eslint-disable-next-line no-control-regex
  t.notMatch(svg, /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/, 'no control characters (not allowed in XML)');
  t.match(svg, /&lt;script&gt;alert\(&quot;x&quot;\)/);
  t.equal(renderServiceMapSvg(buildServiceMap([...events].reverse())), svg, 'deterministic');
  t.equal(svg.match(/<g class="node /g)?.length, map.nodes.length, 'a box per node');
  t.equal(svg.match(/<g class="edge /g)?.length, map.edges.length, 'an arrow per edge');
  t.match(svg, /class="edge edge-denied edge-connections"/, 'denials have their own colour');
  t.match(svg, /class="edge edge-error edge-requests"/);
  t.match(svg, /stroke-dasharray="6 3" marker-end/, 'edges via a waypoint are dashed');
  t.match(svg, /10 req\/s|1\.11 req\/s · 10% err · p99 12ms/, 'edge labels: rate, errors, p99');

  // Columns by depth: frontend (0) → web (1) → db (2); legacy/old (0) → web; web → world; db → web
  // closes a cycle, so it is left out of the depths and drawn back under the boxes.
  const boxX = (name: string): number => {
    const m = new RegExp(`<g class="node node-\\w+"><title>${name}</title><rect x="([\\d.]+)"`).exec(svg);
    if (m === null) throw new Error(`no box for ${name}`);
    return Number(m[1]);
  };
  t.ok(boxX('shop/frontend') < boxX('shop/web'), 'the caller left of the callee');
  t.ok(boxX('shop/web') < boxX('data/db'));
  t.equal(boxX('legacy/old'), boxX('shop/frontend'), 'callers nobody calls share column 0');
  t.ok(boxX('world') > boxX('shop/web'));
});

t.test('svg: an empty map and a self-call still parse', NEEDS_PYTHON, async (t) => {
  t.ok(parseXml(renderServiceMapSvg(buildServiceMap([]))).ok);
  const self = buildServiceMap(connection(PODS.web0, PODS.web1, 8080));
  t.equal(self.edges[0]?.source, self.edges[0]?.destination, 'web calls web');
  t.ok(parseXml(renderServiceMapSvg(self)).ok);
});

t.test('html: the graph and the table, escaped', async (t) => {
  const map = buildServiceMap([...shopEvents(), ...connection(HOSTILE, PODS.db, 5432)]);
  const html = renderServiceMapHtml(map, 'shop <today>');
  t.match(html, /^<!doctype html>\n/);
  t.match(html, /<title>shop &lt;today&gt;<\/title>/);
  t.notMatch(html, /<script/);
  t.ok(html.includes(renderServiceMapSvg(map)), 'the SVG, as rendered alone');
  const table = serviceMapTable(map);
  t.equal(html.match(/<tr class="/g)?.length, table.rows.length, 'one table row per edge');
  t.match(html, /<tr class="denied">/);
  t.match(html, /<td class="num">0<\/td>/);
  if (existsSync(PYTHON)) {
    const body = html.slice(html.indexOf('<svg'), html.indexOf('</table>') + '</table>'.length);
    t.ok(parseXml(`<div>${body}</div>`).ok, 'the embedded SVG and table are well-formed');
  }
});
