// Readiness as far as workload certificates go. A CA outage alone never makes a part unready: it keeps
// serving with the certificates it holds while renewal retries. What does:
// - a wanted identity whose certificate has expired (its connections now fail), and
// - at start, holding no certificate at all while some are wanted (the CA was never reached, or refuses
//   this node everything). The start ends with the first certificate held.
// Past the start, an identity that has no certificate yet (a pod that just arrived, or one the CA
// refuses) is a warning, not a reason: one workload's trouble must not take the whole node out.
// While ready, a certificate whose renewal is failing is a warning naming its time to expiry: the window
// from the first failed renewal (at half-life) to expiry is the one in which someone should act.
import { systemClock, type Clock } from '../clock.js';
import type { CertificateHealth } from './manager.js';

export type CertificateReadinessVerdict =
  | { readonly ready: true; readonly warnings: readonly string[] }
  | { readonly ready: false; readonly reason: string };

/** What readiness reads: CertificateManager implements it. */
export interface CertificateHealthSource {
  health(): CertificateHealth[];
}

/**
 * The verdict for `health` at `nowMs`. `everHeld`: whether this part has held any certificate, now or
 * before; until it has, wanting some is not ready. Pure.
 */
export function judgeCertificates(
  health: readonly CertificateHealth[],
  nowMs: number,
  everHeld: boolean,
): CertificateReadinessVerdict {
  const reasons: string[] = [];
  const warnings: string[] = [];
  for (const h of health) {
    const failing = h.lastError === undefined ? '' : `; last CA error: ${h.lastError}`;
    if (h.held === undefined) {
      warnings.push(`no certificate for ${h.spiffeId} yet${failing}`);
      continue;
    }
    const leftMs = h.held.notAfter.getTime() - nowMs;
    if (leftMs <= 0)
      reasons.push(`certificate for ${h.spiffeId} expired ${seconds(-leftMs)} ago${failing || '; renewing'}`);
    else if (h.consecutiveFailures > 0)
      warnings.push(`certificate for ${h.spiffeId} expires in ${seconds(leftMs)}; renewal failing${failing}`);
  }
  // At start: nothing obtained yet, so every warning so far says why.
  if (!everHeld && health.length > 0) reasons.push(...warnings.splice(0));
  if (reasons.length > 0) return { ready: false, reason: summarize(reasons) };
  return { ready: true, warnings };
}

/** Certificate readiness of one part (agent or waypoint), remembering whether its start is over. */
export class CertificateReadiness {
  readonly #source: CertificateHealthSource;
  readonly #clock: Clock;
  /** Latched by the first check that sees a certificate held: the start is over. */
  #everHeld = false;

  constructor(source: CertificateHealthSource, clock: Clock = systemClock) {
    this.#source = source;
    this.#clock = clock;
  }

  check(): CertificateReadinessVerdict {
    const health = this.#source.health();
    this.#everHeld ||= health.some((h) => h.held !== undefined);
    return judgeCertificates(health, this.#clock.now(), this.#everHeld);
  }

  /** For createReadinessServer: true, or the reason it is not ready. */
  isReady(): string | true {
    const verdict = this.check();
    return verdict.ready ? true : verdict.reason;
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** The first reason and how many more: a probe's message stays one readable line. */
function summarize(reasons: readonly string[]): string {
  return reasons.length === 1 ? reasons[0]! : `${reasons[0]} (and ${reasons.length - 1} more)`;
}
