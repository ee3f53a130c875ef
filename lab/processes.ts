// Running Weft parts as real child processes on loopback: free ports, start, wait until up, stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Polling bounds: the parts start in well under a second; 15 s means something is wrong. */
const WAIT_STEP_MS = 100;
const WAIT_STEPS = 150;

/** A loopback port free right now (the kernel picks it; a tiny race with other binders is accepted). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  server.close();
  return typeof addr === 'object' && addr ? addr.port : 0;
}

/** Polls `probe` until it yields a value; a thrown error counts as "not yet". */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < WAIT_STEPS; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, WAIT_STEP_MS));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * The built `weft` entry point: beside this module in dist/, or dist/ of the package when this module
 * runs from its TypeScript source (tests). Child processes always run the build.
 */
export function weftCliPath(): string {
  const fromSource = import.meta.url.endsWith('.ts');
  return fileURLToPath(new URL(fromSource ? '../dist/cli/main.js' : '../cli/main.js', import.meta.url));
}

/** Starts `weft <args>` from the build, its output appended to `logFile`. */
export function spawnWeft(args: readonly string[], logFile: string): ChildProcess {
  const main = weftCliPath();
  const log = openSync(logFile, 'a');
  return spawn(process.execPath, [main, ...args], { stdio: ['ignore', log, log] });
}

/** SIGTERM and wait for exit (the parts drain on SIGTERM). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

/** Resolves once GET `url` answers 2xx. */
export function waitForHttpOk(what: string, url: string): Promise<true> {
  return waitFor(what, async () => ((await fetch(url)).ok ? true : undefined));
}
