// Tests that run a bench in a lab measure load; two at once (tap runs two files in parallel) starve each
// other into timeouts. Each takes this machine-wide lock first and holds it to the end of its file.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const LOCK = join(tmpdir(), 'weft-bench-test.lock');
const WAIT_MS = 600_000;

function holderAlive(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(LOCK, 'utf8'));
  } catch {
    return false;
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (bounded) for the lock, then holds it until `t` ends; a lock whose holder is gone is taken over. */
export async function benchLock(t: { teardown(fn: () => void): void }): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!holderAlive()) {
        rmSync(LOCK, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`${LOCK}: held by another bench test for ${WAIT_MS} ms`, { cause: err });
      await sleep(500);
    }
  }
  t.teardown(() => rmSync(LOCK, { force: true }));
}
