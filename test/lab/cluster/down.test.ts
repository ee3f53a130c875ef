// `weft lab down` after a crash (root only): with the controller killed by SIGKILL, its pods, agents
// and CA keep running as orphans; down must still find and remove every process, namespace and link
// from the state file (and by the lab id), and `up` must refuse to start over the leftovers meanwhile.
import t from 'tap';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, labDir, labUnavailable, leftovers, readState, skipReason, weft } from './lab-harness.js';

const unavailable = await labUnavailable();

t.test(
  'down after kill -9 of the controller',
  { skip: skipReason(t, unavailable), timeout: 90_000 },
  async (t) => {
    t.plan(9);
    const dir = labDir();
    t.teardown(async () => {
      await weft(['lab', 'down', '--dir', dir]);
      rmSync(dirname(dir), { recursive: true, force: true });
    });
    const up = await weft(['lab', 'up', '--demo', '--dir', dir]);
    t.equal(up.code, 0, `lab up exit code (stderr: ${up.stderr})`);
    const state = readState(dir);
    const controller = state.controller!.pid;
    const others = state.processes.filter((p) => p.pid !== controller);
    t.ok(others.length >= 7, `CA, 2 agents and 4 pods recorded (${others.map((p) => p.name).join(', ')})`);

    process.kill(controller, 'SIGKILL');
    const deadline = Date.now() + 5000;
    while (alive(controller) && Date.now() < deadline) await sleep(50);
    t.notOk(alive(controller), 'the controller is dead');
    t.ok(
      others.every((p) => alive(p.pid)),
      'its processes live on as orphans',
    );

    const refused = await weft(['lab', 'up', '--dir', dir]);
    t.equal(refused.code, 1, 'up refuses to start over a crashed lab');
    t.match(refused.stderr, /no longer running.*weft lab down --dir/);

    const down = await weft(['lab', 'down', '--dir', dir]);
    t.equal(down.code, 0, `lab down exit code (stdout: ${down.stdout})`);
    t.match(down.stdout, /controller was not running/);
    t.same(await leftovers(state), [], 'no namespace, link, process or state file left');
  },
);
