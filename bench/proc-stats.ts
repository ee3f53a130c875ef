// CPU seconds and resident memory of a process, read from /proc (Linux), for per-process cost figures.
import { readFileSync } from 'node:fs';

export interface ProcSample {
  readonly cpuSeconds: number;
  readonly rssBytes: number;
}

/** Clock ticks per second: 100 on every Linux we target (sysconf(_SC_CLK_TCK)). */
const CLK_TCK = 100;
const PAGE_BYTES = 4096;

export function sampleProcess(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which may contain spaces, start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rssPages = Number(fields[21]);
  return { cpuSeconds: (utime + stime) / CLK_TCK, rssBytes: rssPages * PAGE_BYTES };
}
