// The delay before restarting a process of the lab that ended on its own (a pod's command, an agent),
// as Kubernetes' restartPolicy Always grows it: the first restart after a crash is immediate (the kubelet
// keeps no back-off for a container that has not failed lately), a crash loop slows down, and a process
// that ran for a while and then ended starts over without delay.

/** Restarts after the first: 1 s, doubling to 30 s; a run that lasted RESET_AFTER_MS starts over. */
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;
const RESET_AFTER_MS = 10_000;

export class RestartBackoff {
  /** undefined: no recent failure, the next restart is immediate. */
  #nextMs: number | undefined = undefined;

  /** The delay before the next restart of a process that ran for `ranMs`; grows the one after. */
  next(ranMs: number): number {
    if (ranMs >= RESET_AFTER_MS) this.#nextMs = undefined;
    const delay = this.#nextMs ?? 0;
    this.#nextMs = this.#nextMs === undefined ? FIRST_DELAY_MS : Math.min(this.#nextMs * 2, MAX_DELAY_MS);
    return delay;
  }

  /** Starts over (the process was replaced on purpose, not crash-looping). */
  reset(): void {
    this.#nextMs = undefined;
  }
}
