// Fuzzes the waypoint's HTTP/2 path (fuzz/targets/waypoint-h2.ts) in-process for a few seconds, after
// replaying its corpus and regressions.
import t from 'tap';
import { waypointH2Target } from '../../fuzz/targets/waypoint-h2.js';
import { fuzzTargetTest } from './fuzz-test.js';

await fuzzTargetTest(t, waypointH2Target, {
  timeMs: 12_000,
  maxRuns: 2_000,
  batchRuns: 100,
  inputTimeoutMs: 15_000,
});
