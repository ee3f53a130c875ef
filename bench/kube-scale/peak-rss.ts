// Peak resident memory of a process (Linux VmHWM), and resetting it so that one phase's peak can be read
// alone. bench/proc-stats.ts has the current figures; this is only the high-water mark.
import { readFileSync, writeFileSync } from 'node:fs';

/** VmHWM in bytes, or undefined where /proc does not say. */
export function readPeakRss(pid: number): number | undefined {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? undefined : Number(match[1]) * 1024;
}

/** Sets VmHWM back to the current RSS (`5` to clear_refs, Linux 4.0+, the process's owner); false if refused. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}
