// The delay before restarting a process of the lab that ended on its own (a pod's command, an agent),
// as Kubernetes' restartPolicy Always grows it: a crash loop slows down, a process that ran for a while
// and then ended starts over at the first delay.

/** First restart after 1 s, doubling to 30 s; a run that lasted RESET_AFTER_MS starts over at 1 s. */
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;
const RESET_AFTER_MS = 10_000;

export class RestartBackoff {
  #nextMs = FIRST_DELAY_MS;

  /** The delay before the next restart of a process that ran for `ranMs`; grows the one after. */
  next(ranMs: number): number {
    if (ranMs >= RESET_AFTER_MS) this.#nextMs = FIRST_DELAY_MS;
    const delay = this.#nextMs;
    this.#nextMs = Math.min(delay * 2, MAX_DELAY_MS);
    return delay;
  }

  /** Starts over (the process was replaced on purpose, not crash-looping). */
  reset(): void {
    this.#nextMs = FIRST_DELAY_MS;
  }
}
