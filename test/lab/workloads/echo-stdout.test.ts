// The echo as a pod runs it: a separate process whose stdout (the pod's log file in the lab) gets the
// startup line and then one JSON line per request, and which stops on SIGTERM.
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { get } from './echo-peers.js';

const FIXTURE = fileURLToPath(new URL('./echo-stdout-fixture.ts', import.meta.url));

t.test('stdout: a startup line, then one JSON line per request; SIGTERM stops it', async (t) => {
  // The same loaders tap gave this process, so the fixture runs from TypeScript source too.
  const child = spawn(process.execPath, [...process.execArgv, FIXTURE, '--serve'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const deadline = Date.now() + 30_000;
  while (!/listening on 127\.0\.0\.1:\d+/.test(out) && Date.now() < deadline && child.exitCode === null)
    await new Promise((r) => setTimeout(r, 50));
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  t.ok(port > 0, `started: ${out}${err}`);
  await get(port, '/one', { 'x-request-id': 'a' });
  await get(port, '/two?x=1', {}, 'body');
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  t.equal(code, 0, 'exits cleanly on SIGTERM');
  const lines = out.trimEnd().split('\n');
  t.equal(lines.length, 3, 'startup line and two request lines');
  t.match(lines[0], /^echo: default\/echo-v1 listening on 127\.0\.0\.1:\d+/);
  t.match(JSON.parse(lines[1]!), { msg: 'request', path: '/one', requestId: 'a', status: 200 });
  t.match(JSON.parse(lines[2]!), { msg: 'request', method: 'POST', path: '/two', query: { x: '1' } });
});
