// Every request of a chaos run, compactly: when it was scheduled (ms from the run's origin, 0.1 ms
// steps), how long it took (µs: to its answer, or to its failure) and its outcome as one letter. The
// client in the pod fills them; the bench reads them against the times of the restarts and kills.
import type { LoadErrorKind } from '../load/types.js';

/**
 * `o` answered; `r` answered on its retry; a failure by kind: `c` connect, `x` reset, `s` status,
 * `p` protocol, `t` timeout; upper case when the failure was the retry's.
 */
export type OutcomeLetter = 'o' | 'r' | 'c' | 'x' | 's' | 'p' | 't' | 'C' | 'X' | 'S' | 'P' | 'T';

const LETTER: Record<LoadErrorKind, string> = {
  connect: 'c',
  reset: 'x',
  status: 's',
  protocol: 'p',
  timeout: 't',
};

const KIND: Record<string, LoadErrorKind> = {
  c: 'connect',
  x: 'reset',
  s: 'status',
  p: 'protocol',
  t: 'timeout',
};

export function outcomeLetter(error: LoadErrorKind | undefined, retried: boolean): OutcomeLetter {
  const letter = error === undefined ? (retried ? 'r' : 'o') : LETTER[error];
  return (retried && error !== undefined ? letter.toUpperCase() : letter) as OutcomeLetter;
}

/** The failure kind of an outcome letter, or undefined for an answered request. */
export function failureKind(letter: string): LoadErrorKind | undefined {
  return KIND[letter.toLowerCase()];
}

export function wasRetried(letter: string): boolean {
  return letter === 'r' || (letter !== letter.toLowerCase() && failureKind(letter) !== undefined);
}

/** Columns, one entry per request, in the order they ended. */
export interface Timeline {
  /** Scheduled start, ms after the run's origin. */
  readonly t: number[];
  /** Latency in µs (answered), or time until the failure (failed). */
  readonly us: number[];
  /** One OutcomeLetter per request. */
  outcomes: string;
}

export function newTimeline(): Timeline {
  return { t: [], us: [], outcomes: '' };
}

export function recordOutcome(
  timeline: Timeline,
  startMsFromOrigin: number,
  durationMs: number,
  letter: OutcomeLetter,
): void {
  timeline.t.push(Math.round(startMsFromOrigin * 10) / 10);
  timeline.us.push(Math.max(1, Math.round(durationMs * 1000)));
  timeline.outcomes += letter;
}
