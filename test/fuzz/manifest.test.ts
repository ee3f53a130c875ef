// Fuzzes the manifest parser (fuzz/targets/manifest.ts) for a few seconds, after replaying its corpus
// and regressions.
import t from 'tap';
import { manifestTarget } from '../../fuzz/targets/manifest.js';
import { fuzzTargetTest } from './fuzz-test.js';

await fuzzTargetTest(t, manifestTarget, {
  timeMs: 10_000,
  maxRuns: 5_000,
  batchRuns: 250,
  inputTimeoutMs: 5_000,
});
