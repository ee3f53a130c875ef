// `weft bench capture` end to end, very short: it builds a lab, measures the three paths, proves from
// node-1's access log that the captured path was passed through (and the mesh path tunnelled), and
// takes the lab down. Root only (skips with the reason elsewhere, fails under CI).
import t from 'tap';
import { countAccessLog, type CaptureCostResult } from '../../bench/capture-cost.js';
import { labUnavailable, skipReason, weft } from '../lab/cluster/lab-harness.js';
import { run } from '../helpers/exec.js';
import { benchLock } from '../helpers/bench-lock.js';

// Its own run is bounded below; the file may first wait for another bench test (helpers/bench-lock.ts).
t.setTimeout(720_000);

const unavailable = await labUnavailable();
if (unavailable === undefined) await benchLock(t);

async function labIds(): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const line of (await run('ip', ['netns', 'list'])).stdout.split('\n')) {
    const m = /^weft-([0-9a-z]+)-/.exec(line);
    if (m) ids.add(m[1]!);
  }
  return ids;
}

t.test('node-1 access-log lines are counted per route and verdict', async (t) => {
  const line = (fields: Record<string, unknown>) =>
    JSON.stringify({ level: 30, direction: 'outbound', ...fields, msg: 'connection complete' });
  const log = [
    line({ 'src.addr': '10.77.1.11:40000', 'dst.addr': '10.77.2.10:8080', verdict: 'passthrough' }),
    line({
      'src.addr': '10.77.1.11:40001',
      'dst.addr': '10.77.2.10:8081',
      verdict: 'passthrough',
      error: 'reset',
    }),
    line({ 'src.addr': '10.77.1.11:40002', 'dst.addr': '10.77.2.10:8080', verdict: 'denied' }),
    line({
      'src.addr': '10.77.1.11:40003',
      'dst.addr': '10.77.2.11:15008',
      'dst.hbone_addr': '10.77.2.11:8080',
      verdict: 'allowed',
    }),
    line({ 'src.addr': '10.77.1.10:40004', 'dst.addr': '10.77.2.10:8080', verdict: 'passthrough' }),
    line({ 'src.addr': '10.77.1.110:40005', 'dst.addr': '10.77.2.10:8080', verdict: 'passthrough' }),
    JSON.stringify({ direction: 'inbound', 'src.addr': '10.77.1.11:1', msg: 'connection complete' }),
    'not json "connection complete"',
    '',
  ].join('\n');
  t.same(countAccessLog(log), {
    passthrough: 2,
    passthroughOther: 1,
    mesh: 1,
    meshOther: 0,
    direct: 1,
    withError: 1,
  });
});

t.test(
  'bench capture: direct, passthrough and mesh all carry load; passthrough verified in the access log',
  { skip: skipReason(t, unavailable), timeout: 115_000 },
  async (t) => {
    const r = await weft(['bench', 'capture', '--duration', '1s', '--warmup', '0s', '--json']);
    t.equal(r.code, 0, 'exit 0');
    if (r.code !== 0) t.comment(r.stderr.slice(-4000));
    const last = r.stdout.trim().split('\n').at(-1) ?? '';
    if (!last.startsWith('{')) return void t.fail('no JSON result on stdout');
    const result = JSON.parse(last) as CaptureCostResult;
    t.same(
      result.paths.map((p) => p.scenario),
      ['direct', 'capture', 'mesh'],
      'the three paths',
    );
    for (const p of result.paths) {
      t.ok(p.fixed1000.achievedRps > 0, `${p.scenario}: requests at the fixed rate`);
      t.ok(p.maxRps.achievedRps > 0, `${p.scenario}: requests at the maximum rate`);
      t.ok(p.bulk1.gbitPerSecond > 0, `${p.scenario}: bulk throughput`);
    }
    t.ok(result.check.passed, 'capture check passed');
    if (!result.check.passed) t.comment(result.check.problems.join('\n'));
    const capture = result.check.runs.filter((run) => run.path === 'capture');
    t.equal(capture.length, 3, 'every passthrough run was checked');
    for (const run of capture) t.ok(run.logged >= run.connections, `${run.test}: passthrough logged`);
    t.equal(result.check.directSeen, 0, 'the plain client was never captured');
    t.notOk((await labIds()).has(result.labId), `its lab ${result.labId} is gone`);
  },
);
