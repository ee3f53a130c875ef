// Gateway API durations (GEP-2257): `1h30m`, `500ms`, `0s`. The one parser for route timeouts.

const DURATION_RE = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const COMPONENT_RE = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds, or undefined if `text` is not a GEP-2257 duration. Repeated units add up (`1h2h` = 3h). */
export function parseGatewayDuration(text: string): number | undefined {
  if (!DURATION_RE.test(text)) return undefined;
  let totalMs = 0;
  for (const [, amount, unit] of text.matchAll(COMPONENT_RE)) {
    totalMs += Number(amount) * (UNIT_MS[unit ?? ''] ?? 0);
  }
  return totalMs;
}
