// Fuzzes the waypoint's HTTP/1.1 path (fuzz/targets/waypoint-http1.ts) in-process for a few seconds,
// after replaying its corpus and regressions.
import t from 'tap';
import { waypointHttp1Target } from '../../fuzz/targets/waypoint-http1.js';
import { fuzzTargetTest } from './fuzz-test.js';

await fuzzTargetTest(t, waypointHttp1Target, {
  timeMs: 15_000,
  maxRuns: 2_000,
  batchRuns: 100,
  inputTimeoutMs: 15_000,
});
