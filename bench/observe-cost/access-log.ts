// Whether a run went through the mesh: the connections an agent's access log (one JSON line per
// connection, written at close) holds for the bench's route, counted from a byte offset so that each
// run reads only its own lines.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** The bench's route: the client pod's address and the server's `ip:port` (the HBONE target). */
export interface MeshRoute {
  readonly client: string;
  readonly server: string;
}

/** The end of the log now: where the next run's lines start. */
export function logOffset(file: string): number {
  return statSync(file).size;
}

/**
 * The connections of `route` logged past `offset` as carried over HBONE and allowed: node-1's agent logs
 * them `outbound`, node-2's `inbound`.
 */
export function countMeshed(
  file: string,
  offset: number,
  route: MeshRoute,
  direction: 'inbound' | 'outbound',
): number {
  const size = logOffset(file);
  if (size <= offset) return 0;
  const buf = Buffer.alloc(size - offset);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buf, 0, buf.length, offset);
  } finally {
    closeSync(fd);
  }
  // Substring tests, not JSON.parse: a 10 s run logs ~15,000 lines per agent.
  const wanted = [
    '"msg":"connection complete"',
    `"direction":"${direction}"`,
    `"src.addr":"${route.client}:`,
    `"dst.hbone_addr":"${route.server}"`,
    '"verdict":"allowed"',
  ];
  let n = 0;
  for (const line of buf.toString('utf8').split('\n')) if (wanted.every((w) => line.includes(w))) n++;
  return n;
}
