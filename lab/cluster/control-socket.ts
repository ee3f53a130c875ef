// Commands to a running lab's controller (`weft lab agent stop|start|restart NODE`, `weft lab restart
// waypoint|ca`): HTTP on a Unix socket in the lab's directory, readable and writable by its owner only
// (root, as the lab runs). One request per command; the answer comes when the action is done (an agent
// started is ready; a waypoint restarted has its new process ready and its old one drained and gone).
import { chmodSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { errorMessage } from '../../core/errors.js';

export const CONTROL_SOCKET_FILE = 'control.sock';
/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** A request body is never needed; anything larger than this is refused. */
const MAX_BODY_BYTES = 1024;
/** Starting an agent waits for its readiness (20 s at most), plus the old one's drain and stop (9 s). */
const REQUEST_TIMEOUT_MS = 40_000;

export type AgentAction = 'start' | 'stop' | 'restart' | 'kill';
export const AGENT_ACTIONS: readonly string[] = ['start', 'stop', 'restart', 'kill'] satisfies AgentAction[];

export type WaypointAction = 'restart';
export const WAYPOINT_ACTIONS: readonly string[] = ['restart'] satisfies WaypointAction[];
/**
 * A waypoint restart waits for the new process to be ready (20 s at most) and for the old one to drain
 * and exit (its drain deadline, 25 s by default, and the lab's stop grace).
 */
export const WAYPOINT_REQUEST_TIMEOUT_MS = 90_000;

export type CaAction = 'restart';
/** A CA restart waits for the new one to be prepared (20 s at most) and the old one's stop. */
export const CA_REQUEST_TIMEOUT_MS = 60_000;

export interface ControlHandlers {
  /** Does `action` to the lab's CA. */
  ca?(action: CaAction): Promise<unknown>;
  /** Does `action` to node `node`'s agent; throws a ControlError for a bad request. */
  agent(node: string, action: AgentAction): Promise<unknown>;
  /** Does `action` to the pods of waypoint `namespace/name`; throws a ControlError for a bad request. */
  waypoint?(namespace: string, name: string, action: WaypointAction): Promise<unknown>;
}

/** A request the controller refuses (unknown node …), answered with `status`. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function controlSocketPath(dir: string): string {
  return join(dir, CONTROL_SOCKET_FILE);
}

/** Why a lab in `dir` cannot have a control socket, or undefined. */
export function controlSocketProblem(dir: string): string | undefined {
  const path = controlSocketPath(dir);
  return Buffer.byteLength(path) > MAX_SOCKET_PATH
    ? `the control socket path ${path} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter --dir`
    : undefined;
}

/** Serves `handlers` on the control socket of `dir` (replacing a stale socket file). */
export async function serveControl(dir: string, handlers: ControlHandlers): Promise<Server> {
  const path = controlSocketPath(dir);
  rmSync(path, { force: true });
  const server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    };
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy();
    });
    if (req.url === '/v1/ca/restart' && handlers.ca !== undefined) {
      if (req.method !== 'POST') {
        reply(404, { error: `no such command: ${req.method} ${req.url}` });
        return;
      }
      handlers
        .ca('restart')
        .then((result) => reply(200, result))
        .catch((err: unknown) =>
          reply(err instanceof ControlError ? err.status : 500, { error: errorMessage(err) }),
        );
      return;
    }
    const waypoint = /^\/v1\/waypoints\/([^/]+)\/([^/]+)\/([a-z]+)$/.exec(req.url ?? '');
    if (waypoint !== null && handlers.waypoint !== undefined) {
      if (req.method !== 'POST' || !WAYPOINT_ACTIONS.includes(waypoint[3]!)) {
        reply(404, { error: `no such command: ${req.method} ${req.url}` });
        return;
      }
      handlers
        .waypoint(
          decodeURIComponent(waypoint[1]!),
          decodeURIComponent(waypoint[2]!),
          waypoint[3] as WaypointAction,
        )
        .then((result) => reply(200, result))
        .catch((err: unknown) =>
          reply(err instanceof ControlError ? err.status : 500, { error: errorMessage(err) }),
        );
      return;
    }
    const match = /^\/v1\/agents\/([^/]+)\/([a-z]+)$/.exec(req.url ?? '');
    if (req.method !== 'POST' || match === null || !AGENT_ACTIONS.includes(match[2]!)) {
      reply(404, { error: `no such command: ${req.method} ${req.url}` });
      return;
    }
    handlers
      .agent(decodeURIComponent(match[1]!), match[2] as AgentAction)
      .then((result) => reply(200, result))
      .catch((err: unknown) =>
        reply(err instanceof ControlError ? err.status : 500, { error: errorMessage(err) }),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  return server;
}

export interface ControlAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** Sends `POST path` to the controller of the lab in `dir`; gives up after `timeoutMs` without an answer. */
export async function sendControl(
  dir: string,
  path: string,
  timeoutMs = REQUEST_TIMEOUT_MS,
): Promise<ControlAnswer> {
  const socketPath = controlSocketPath(dir);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
        } catch {
          reject(new Error(`the lab controller answered ${res.statusCode}: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${socketPath} in ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new Error(
              `no lab controller is listening on ${socketPath}: is the lab running? (weft lab status)`,
            )
          : new Error(`cannot reach the lab controller on ${socketPath}: ${err.message}`),
      ),
    );
    req.end();
  });
}
