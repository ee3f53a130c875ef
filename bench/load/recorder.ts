// What a run measured: latency histograms in microseconds (HDR, 3 significant digits), counts and
// errors by kind, for requests scheduled inside the measured window only (after the warm-up).
import * as hdr from 'hdr-histogram-js';
import type { LoadErrorKind } from './types.js';

/** Up to 2 minutes, in microseconds. */
const HIGHEST_US = 120_000_000;

export interface LatencySummaryUs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** Percentile → microseconds, for plots: 0 … 99.999 on a log-of-(1/(1-p)) scale, as HDR plots are. */
export type PercentileCurve = readonly (readonly [percentile: number, us: number])[];

export function newHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
  });
}

export function summarize(h: hdr.Histogram): LatencySummaryUs {
  const at = (p: number): number => Math.round(h.getValueAtPercentile(p));
  return {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: Math.round(h.maxValue),
    mean: Math.round(h.mean),
  };
}

const CURVE_POINTS = [
  0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 99, 99.5, 99.9, 99.95, 99.99, 99.999,
];

export function percentileCurve(h: hdr.Histogram): PercentileCurve {
  if (h.totalCount === 0) return [];
  return CURVE_POINTS.map((p) => [p, Math.round(h.getValueAtPercentile(p))] as const);
}

export class Recorder {
  /** From the scheduled start (open loop) or the send (closed loop): what a user waits. */
  readonly latency = newHistogram();
  /** From the moment the request was handed to its connection: without the generator's lateness. */
  readonly service = newHistogram();
  /** How late the generator handed requests over against their schedule (open loop). */
  readonly lag = newHistogram();
  readonly errors: Record<LoadErrorKind, number> = {
    connect: 0,
    reset: 0,
    status: 0,
    protocol: 0,
    timeout: 0,
  };
  completed = 0;
  /** Requests scheduled before this (performance.now() ms) are warm-up: not recorded. */
  recordFromMs = Infinity;

  inWindow(scheduledMs: number): boolean {
    return scheduledMs >= this.recordFromMs;
  }

  done(scheduledMs: number, sentMs: number, endMs: number, error: LoadErrorKind | undefined): void {
    if (scheduledMs < this.recordFromMs) return;
    if (error !== undefined) {
      this.errors[error]++;
      return;
    }
    this.completed++;
    this.latency.recordValue(toUs(endMs - scheduledMs));
    this.service.recordValue(toUs(endMs - sentMs));
    this.lag.recordValue(toUs(sentMs - scheduledMs));
  }

  get errorCount(): number {
    return Object.values(this.errors).reduce((a, b) => a + b, 0);
  }

  close(): void {
    this.latency.destroy();
    this.service.destroy();
    this.lag.destroy();
  }
}

function toUs(ms: number): number {
  return Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000)));
}
