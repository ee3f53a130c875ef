// The open-loop schedule: request k is due at `start + k / rate`, and `fire(due)` is called for each as
// close to its due time as the machine allows, whether or not earlier requests returned.
//
// Why a worker thread: Node's timers have millisecond granularity and run late by up to ~1-2 ms on a
// busy event loop, which at 1000 requests/s would be the largest term in every latency measured from
// the schedule. A worker sleeps on a futex (Atomics.wait takes fractional milliseconds), spins for the
// last ~0.1 ms, and posts the due index; the main thread wakes from epoll within tens of microseconds.
// The spin costs ~10 % of a core at 1000/s, instead of the whole core a main-thread busy loop would
// take from the system under test on a 2-core machine.
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

/** Plain CommonJS for `eval`, so it runs the same from the TypeScript sources and the build. */
const TICKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { performance } = require('node:perf_hooks');
const { rate, startMs, endMs, originMs, spinMs, control } = workerData;
const flag = new Int32Array(control);
// performance.now() differs between threads by their time origins.
const shift = originMs - performance.timeOrigin;
const start = startMs + shift;
const end = endMs + shift;
const interval = 1000 / rate;
for (let k = 0; ; k++) {
  const due = start + k * interval;
  if (due >= end || Atomics.load(flag, 0) !== 0) break;
  const wait = due - performance.now() - spinMs;
  if (wait > 0 && Atomics.wait(flag, 0, 0, wait) === 'ok') break;
  while (performance.now() < due) {}
  parentPort.postMessage(k);
}
parentPort.postMessage(-1);
`;

export interface PacerOptions {
  readonly rate: number;
  /** performance.now() of the first due time. */
  readonly startMs: number;
  /** No request is due at or after this. */
  readonly endMs: number;
  /** Called for every due request, in order; `dueMs` is on this thread's performance.now() clock. */
  readonly fire: (dueMs: number) => void;
}

/** Runs the schedule; resolves after the last due request has fired (or `signal` aborted it). */
export async function runPacer(options: PacerOptions, signal?: AbortSignal): Promise<void> {
  const control = new SharedArrayBuffer(4);
  const worker = new Worker(TICKER, {
    eval: true,
    workerData: {
      rate: options.rate,
      startMs: options.startMs,
      endMs: options.endMs,
      originMs: performance.timeOrigin,
      spinMs: 0.1,
      control,
    },
  });
  const interval = 1000 / options.rate;
  let next = 0;
  const stop = (): void => {
    Atomics.store(new Int32Array(control), 0, 1);
    Atomics.notify(new Int32Array(control), 0);
  };
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await new Promise<void>((resolve, reject) => {
      worker.on('error', reject);
      worker.on('message', (k: number) => {
        if (k < 0) return resolve();
        // Messages may be coalesced by a late event loop: fire everything due up to k, in order.
        for (; next <= k; next++) options.fire(options.startMs + next * interval);
      });
    });
  } finally {
    signal?.removeEventListener('abort', stop);
    stop();
    await worker.terminate();
  }
}
