// `weft lab restart waypoint [--namespace NS] [--name NAME] [--dir DIR]`: replaces the process of each
// pod of a waypoint in place, without a failed request. The lab starts the new `weft waypoint run` beside
// the old one in the pod's network namespace (both listen on the same SO_REUSEPORT ports), waits until
// the new one answers ready itself (its `weft-pid` readiness header), then sends the old one SIGTERM and
// waits until it has drained and exited (proxy/server/drain.ts). An upgrade is the same command after
// the build changed.
import { sendControl, WAYPOINT_REQUEST_TIMEOUT_MS } from '../lab/cluster/control-socket.js';
import type { WaypointPodRestart } from '../lab/cluster/controller.js';
import { DEFAULT_WAYPOINT_NAME, waypointSpecProblem } from '../lab/cluster/waypoint.js';
import { parseFlagsAndArgs, stringFlag, UsageError } from './flags.js';
import { labDirFlag } from './lab-dir.js';

export const LAB_RESTART_WAYPOINT_USAGE = `weft lab restart waypoint [--namespace default] [--name ${DEFAULT_WAYPOINT_NAME}] [--dir DIR]
               starts a new waypoint process beside the running one in its pod, waits until the new one is
               ready, then stops the old one (it drains: no request fails) and waits until it has exited`;

export async function labRestartWaypoint(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlagsAndArgs(argv, {
    dir: { type: 'string' },
    namespace: { type: 'string', short: 'n' },
    name: { type: 'string' },
  });
  if (positionals.length > 0)
    throw new UsageError(
      `unexpected argument ${JSON.stringify(positionals[0])}\n\n${LAB_RESTART_WAYPOINT_USAGE}`,
    );
  const namespace = stringFlag(values, 'namespace', 'default');
  const name = stringFlag(values, 'name', DEFAULT_WAYPOINT_NAME);
  const problem = waypointSpecProblem({ namespace, name, waypointFor: undefined });
  if (problem !== undefined) throw new UsageError(`${problem}\n\n${LAB_RESTART_WAYPOINT_USAGE}`);
  const answer = await sendControl(
    labDirFlag(values),
    `/v1/waypoints/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}/restart`,
    WAYPOINT_REQUEST_TIMEOUT_MS,
  );
  if (answer.status !== 200) {
    const error = (answer.body as { error?: unknown } | null)?.error;
    process.stderr.write(`weft: ${typeof error === 'string' ? error : JSON.stringify(answer.body)}\n`);
    return 1;
  }
  const pods = (answer.body as { pods?: WaypointPodRestart[] }).pods ?? [];
  for (const p of pods)
    process.stdout.write(
      `${p.pod}: pid ${p.oldPid ?? '-'} -> ${p.newPid}: new process ready after ${seconds(p.readyMs)}` +
        (p.oldEnded === undefined
          ? '\n'
          : `; old one drained and ended (${p.oldEnded}) after ${seconds(p.drainMs)}\n`),
    );
  return 0;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
