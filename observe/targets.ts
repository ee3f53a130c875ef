// Where `weft observe` reads flows: the admin endpoints of every agent and waypoint. In a lab they are
// Unix sockets in `<lab>/admin` (agent-<node>.sock, waypoint-<ns>.<pod>.sock: the lab starts them so,
// since a loopback port is reachable only from inside its own network namespace); on a cluster they are
// port 15000 of each agent and waypoint pod, reached through a port-forward (kubernetes-targets.ts);
// anywhere else they are given as `--target HOST:PORT` or `--target unix:PATH`.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseHostPort } from '../core/address.js';
import { ADMIN_DIR } from '../lab/cluster/plan.js';
import type { PodPortForwarder } from './port-forward.js';

export type FlowTarget =
  | { readonly kind: 'unix'; readonly name: string; readonly path: string }
  | { readonly kind: 'tcp'; readonly name: string; readonly host: string; readonly port: number }
  | PodFlowTarget;

/** A port on a pod's loopback, reached through `forwarder` (observe/port-forward.ts). */
export interface PodFlowTarget {
  readonly kind: 'pod';
  readonly name: string;
  readonly namespace: string;
  readonly pod: string;
  readonly port: number;
  readonly forwarder: PodPortForwarder;
}

/** `HOST:PORT` or `unix:PATH`; throws naming the value otherwise. */
export function parseFlowTarget(text: string): FlowTarget {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (path === '') throw new Error(`--target ${text}: no socket path after unix:`);
    return { kind: 'unix', name: path, path };
  }
  const { host, port } = parseHostPort(text, '--target');
  return { kind: 'tcp', name: text, host, port };
}

/** The lab's admin sockets, named after what listens there (`agent node-1`, `waypoint default/waypoint-0`). */
export function labFlowTargets(labDir: string): FlowTarget[] {
  const dir = join(labDir, ADMIN_DIR);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new Error(`no lab admin sockets in ${dir}: is a lab running there (weft lab up)?`, {
        cause: err,
      });
    throw err;
  }
  const targets: FlowTarget[] = [];
  for (const file of names.sort()) {
    const agent = /^agent-(.+)\.sock$/.exec(file);
    const waypoint = /^waypoint-([^.]+)\.(.+)\.sock$/.exec(file);
    const name = agent
      ? `agent ${agent[1]!}`
      : waypoint
        ? `waypoint ${waypoint[1]!}/${waypoint[2]!}`
        : undefined;
    if (name !== undefined) targets.push({ kind: 'unix', name, path: join(dir, file) });
  }
  return targets;
}
