// The answer to a CONNECT, shared by the agent's and the waypoint's HBONE servers.
import type { ServerHttp2Stream } from 'node:http2';

/** Answers a stream unless it is already gone (a policy close or a reset may have got there first). */
export function respondIfOpen(stream: ServerHttp2Stream, status: number): boolean {
  if (stream.closed || stream.destroyed) return false;
  try {
    stream.respond({ ':status': status }, { endStream: status !== 200 });
    return true;
  } catch {
    return false;
  }
}
