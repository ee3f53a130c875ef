// The generator's CPU scheduling class. Measured on this kind of VM: under the default policy a thread
// sleeping for 0.9 ms wakes up to 1-2 ms late at p99, which is larger than the latencies being measured;
// under SCHED_FIFO the same wait is ~75 µs late at p99. Fixed-rate runs therefore run the generator
// (and the bench's own trivial servers) under `chrt -f`, as cyclictest does; it only takes the CPU when
// a request is due, so it does not starve the system under test. Closed-loop runs never do: a real-time
// generator at full speed would.
import { readFileSync } from 'node:fs';

/** SCHED_FIFO priority for the generator: above every normal process, below the kernel's own threads. */
export const REALTIME_PRIORITY = 20;

const POLICIES = [
  'SCHED_OTHER',
  'SCHED_FIFO',
  'SCHED_RR',
  'SCHED_BATCH',
  'SCHED_ISO',
  'SCHED_IDLE',
  'SCHED_DEADLINE',
];

/** This process's scheduling policy (field 41 of /proc/self/stat). */
export function schedulerPolicy(): string {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after `)` start at field 3 (state): field 41 is index 38.
  return POLICIES[Number(fields[38])] ?? `policy ${fields[38]}`;
}

/** `chrt -f PRIO` in front of `argv` (the caller spawns it). */
export function realtimeArgv(argv: readonly string[]): string[] {
  return ['chrt', '-f', String(REALTIME_PRIORITY), ...argv];
}
