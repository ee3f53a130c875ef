// observe/flow-file.ts: a saved `weft observe -o json` file back into events; `lost` lines are counted,
// a bad line fails the file naming file and line.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { flowEventJson } from '../../core/flows/event.js';
import { FlowFileError, parseFlowFile, readFlowFile } from '../../observe/flow-file.js';
import { connection, PODS, request } from './flows.js';

const EVENTS = [...connection(PODS.web0, PODS.db, 5432), request(PODS.frontend, PODS.web0)];
const LOST = JSON.stringify({ type: 'lost', reporter: { kind: 'agent', name: 'node-2' }, count: 7 }) + '\n';

t.test('a good file: events in order, lost lines counted, blank lines and CRLF allowed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-flows-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'flows.jsonl');
  const text =
    flowEventJson(EVENTS[0]!) +
    LOST +
    '\n' +
    flowEventJson(EVENTS[1]!).replace('\n', '\r\n') +
    LOST +
    flowEventJson(EVENTS[2]!);
  writeFileSync(file, text);
  const read = readFlowFile(file);
  t.same(read.events, EVENTS);
  t.equal(read.lostEvents, 14);
  t.equal(read.lostLines, 2);
  t.same(parseFlowFile('', 'empty.jsonl'), { events: [], lostEvents: 0, lostLines: 0 });
});

t.test('a bad line names the file and the line', async (t) => {
  const cases: [text: string, line: number, reason: RegExp][] = [
    [flowEventJson(EVENTS[0]!) + '{"type": "close"\n', 2, /^not JSON: /],
    [
      flowEventJson(EVENTS[0]!) + '\n\n' + JSON.stringify({ ...EVENTS[1], verdict: 'MAYBE' }),
      4,
      /^verdict: /,
    ],
    ['[1,2]\n', 1, /^not a JSON object$/],
  ];
  t.plan(cases.length * 4);
  for (const [text, line, reason] of cases) {
    try {
      parseFlowFile(text, 'saved/flows.jsonl');
      t.fail('parsed a bad file');
    } catch (err) {
      t.ok(err instanceof FlowFileError);
      const e = err as FlowFileError;
      t.equal(e.line, line);
      t.match(e.reason, reason);
      t.equal(e.message, `saved/flows.jsonl:${line}: ${e.reason}`);
    }
  }
});

t.test('a missing file is an I/O error naming the path', async (t) => {
  t.throws(() => readFlowFile('/nonexistent/flows.jsonl'), {
    code: 'ENOENT',
    message: /\/nonexistent\/flows\.jsonl/,
  });
});
