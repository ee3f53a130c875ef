// Fuzzes the node agent's HBONE server (fuzz/targets/hbone.ts) on loopback for a few seconds, after
// replaying its corpus and regressions.
import t from 'tap';
import { hboneTarget } from '../../fuzz/targets/hbone.js';
import { fuzzTargetTest } from './fuzz-test.js';

await fuzzTargetTest(t, hboneTarget, {
  timeMs: 15_000,
  maxRuns: 2_000,
  batchRuns: 100,
  inputTimeoutMs: 10_000,
});
