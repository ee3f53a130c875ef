// Time as timers see it (certificate rotation, backoff, debounce); injected so tests need not wait.

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Runs `fn` after `delayMs`; the timer must not keep the process alive. */
  schedule(delayMs: number, fn: () => void): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  schedule(delayMs, fn) {
    // Node timers overflow above 2^31-1 ms (~24.8 days) and fire at once; clamp and let the caller re-arm.
    const timer = setTimeout(fn, Math.min(Math.max(0, delayMs), 2 ** 31 - 1));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};
