// Runs peers nobody here wrote (openssl, python3) and returns their output; failures carry stderr.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function run(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ stdout: String(stdout), stderr: String(stderr), code });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Debian's python3, where python3-grpcio, python3-h2 and python3-cryptography are installed. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Why a Python peer cannot run here, or undefined when `modules` all import under SYSTEM_PYTHON. */
export async function missingPython(modules: readonly string[]): Promise<string | undefined> {
  if (!existsSync(SYSTEM_PYTHON)) return `${SYSTEM_PYTHON} not found`;
  const r = await run(SYSTEM_PYTHON, ['-c', `import ${modules.join(', ')}`]);
  return r.code === 0
    ? undefined
    : `${SYSTEM_PYTHON} cannot import ${modules.join(', ')}: ${r.stderr.trim()}`;
}

/**
 * Why a test that needs an outside peer cannot run — or, under CI (which installs every peer), a
 * failure instead of a skip, so a missing install step cannot pass silently.
 */
export function skipReason(t: { fail(message: string): void }, missing: string | undefined): string | false {
  if (missing === undefined) return false;
  if (process.env.CI) {
    t.fail(`CI must provide this peer: ${missing}`);
    return false;
  }
  return missing;
}
