// A clock the test moves by hand: timers fire in time order when `advance` passes them.
import type { Clock, TimerHandle } from '../../core/clock.js';

interface Pending {
  at: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  #now: number;
  #timers: Pending[] = [];

  constructor(start = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  schedule(delayMs: number, fn: () => void): TimerHandle {
    const p: Pending = { at: this.#now + Math.max(0, delayMs), fn, cancelled: false };
    this.#timers.push(p);
    return { cancel: () => void (p.cancelled = true) };
  }

  /** Delays of the timers still pending, from now, soonest first. */
  pendingDelays(): number[] {
    return this.#timers
      .filter((p) => !p.cancelled)
      .map((p) => p.at - this.#now)
      .sort((a, b) => a - b);
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    while (true) {
      const due = this.#timers.filter((p) => !p.cancelled && p.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((p) => p !== due);
      this.#now = due.at;
      due.fn();
    }
    this.#now = until;
    this.#timers = this.#timers.filter((p) => !p.cancelled);
  }
}
