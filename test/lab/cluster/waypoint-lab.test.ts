// `weft waypoint apply|list|delete` in a real lab (root only): the waypoint pod is scheduled like any
// other, runs `weft waypoint run` with its own node and that node's token filled in by `$(NODE_NAME)`
// expansion, shows up in `weft waypoint list`, and goes with `weft waypoint delete`.
import t from 'tap';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WaypointReport } from '../../../cli/waypoint.js';
import type { LabState, PodState } from '../../../lab/cluster/state.js';
import { labDir, labUnavailable, readState, skipReason, weft } from './lab-harness.js';

const unavailable = await labUnavailable();

function waypointPod(state: LabState): PodState | undefined {
  return state.pods.find((p) => p.namespace === 'default' && p.name === 'waypoint-0');
}

async function until<T>(what: string, probe: () => T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = probe();
    if (value !== undefined) return value;
    await sleep(100);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function flag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
}

t.test(
  'a waypoint in a lab: its pod runs on its node with that node’s token, then goes',
  { skip: skipReason(t, unavailable), timeout: 90_000 },
  async (t) => {
    const dir = labDir();
    t.teardown(async () => {
      await weft(['lab', 'down', '--dir', dir]);
      rmSync(dirname(dir), { recursive: true, force: true });
    });
    const up = await weft(['lab', 'up', '--nodes', '2', '--dir', dir]);
    t.equal(up.code, 0, `lab up (stderr: ${up.stderr})`);

    const apply = await weft(['waypoint', 'apply', '-n', 'default', '--dir', dir]);
    t.equal(apply.code, 0, `waypoint apply (stderr: ${apply.stderr})`);
    t.match(apply.stdout, /Pod default\/waypoint-0 created/);

    // The pod is started in the pass after the lab scheduled it and gave it an IP.
    const pod = await until('the waypoint pod to be started', () => {
      const p = waypointPod(readState(dir));
      return p !== undefined && p.command.length > 0 ? p : undefined;
    });
    t.match(pod.node, /^node-[12]$/);
    t.same(pod.command.slice(2, 4), ['waypoint', 'run']);
    t.equal(flag(pod.command, '--node'), pod.node, '$(NODE_NAME) is the node it was scheduled to');
    t.equal(flag(pod.command, '--token-file'), join(dir, 'tokens', `${pod.node}.token`));

    const list = await weft(['waypoint', 'list', '-o', 'json', '--dir', dir]);
    t.equal(list.code, 0, `waypoint list (stderr: ${list.stderr})`);
    const [report] = JSON.parse(list.stdout) as WaypointReport[];
    t.match(report, { namespace: 'default', name: 'waypoint', exists: true, pods: [{ name: 'waypoint-0' }] });
    t.equal(report?.pods[0]?.node, pod.node);

    const del = await weft(['waypoint', 'delete', '-n', 'default', '--grace', '0', '--dir', dir]);
    t.equal(del.code, 0, `waypoint delete (stderr: ${del.stderr})`);
    await until('the waypoint pod to go', () =>
      waypointPod(readState(dir)) === undefined ? true : undefined,
    );
    t.pass('the lab removed the pod');
  },
);
