// The random source the routing engine draws from (weighted backends, mirror sampling). Injected, so a
// test can fix the sequence and count shares exactly.

/** Uniform numbers in [0, 1), like Math.random. */
export type RandomSource = () => number;

export const defaultRandom: RandomSource = Math.random;

/** mulberry32: a small, fast, seeded generator with a 2^32 period. For tests and benches, never secrets. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
