// The lab's control socket: commands reach the handler and come back with its answer or its refusal,
// anything else is refused, and the socket is its owner's only.
import t from 'tap';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ControlError,
  controlSocketPath,
  controlSocketProblem,
  sendControl,
  serveControl,
  type AgentAction,
} from '../../../lab/cluster/control-socket.js';
import { RestartBackoff } from '../../../lab/cluster/restart-backoff.js';

t.test('agent commands reach the handler; refusals carry their status and reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-control-'));
  const calls: [string, AgentAction][] = [];
  const server = await serveControl(dir, {
    async agent(node, action) {
      if (node !== 'node-1') throw new ControlError(404, `no node ${node}`);
      if (action === 'start') throw new Error('agent exited while starting');
      calls.push([node, action]);
      return { node, action, done: true };
    },
  });
  t.teardown(() => void server.close());
  t.equal(statSync(controlSocketPath(dir)).mode & 0o777, 0o600, 'owner only');

  t.same(await sendControl(dir, '/v1/agents/node-1/restart'), {
    status: 200,
    body: { node: 'node-1', action: 'restart', done: true },
  });
  t.same(calls, [['node-1', 'restart']]);
  t.same(await sendControl(dir, '/v1/agents/node-9/stop'), {
    status: 404,
    body: { error: 'no node node-9' },
  });
  t.same(await sendControl(dir, '/v1/agents/node-1/start'), {
    status: 500,
    body: { error: 'agent exited while starting' },
  });
  const unknown = await sendControl(dir, '/v1/agents/node-1/explode');
  t.equal(unknown.status, 404, 'an unknown action is refused');
  t.equal((await sendControl(dir, '/v1/pods')).status, 404, 'an unknown path is refused');
  t.same(calls.length, 1, 'refused commands never reached the handler');
});

t.test('no controller: the command says so', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-control-'));
  await t.rejects(
    sendControl(dir, '/v1/agents/node-1/stop'),
    /no lab controller is listening on .*control\.sock/,
  );
});

t.test('a directory too long for a Unix socket is named as the problem', async (t) => {
  t.equal(controlSocketProblem('/tmp/lab'), undefined);
  t.match(controlSocketProblem(`/tmp/${'x'.repeat(120)}`), /longer than 107 bytes: use a shorter --dir/);
});

t.test(
  'restart delays: at once, then 1 s doubling to 30 s; at once again after a long run or a reset',
  async (t) => {
    const b = new RestartBackoff();
    t.same(
      Array.from({ length: 8 }, () => b.next(100)),
      [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000],
    );
    t.equal(b.next(60_000), 0, 'a run of a minute starts over');
    t.equal(b.next(100), 1000);
    b.reset();
    t.equal(b.next(100), 0);
  },
);
