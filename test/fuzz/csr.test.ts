// Fuzzes the CA's CSR checks (fuzz/targets/csr.ts) for a few seconds, after replaying its corpus and
// regressions.
import t from 'tap';
import { csrTarget } from '../../fuzz/targets/csr.js';
import { fuzzTargetTest } from './fuzz-test.js';

await fuzzTargetTest(t, csrTarget, { timeMs: 8_000, maxRuns: 5_000, batchRuns: 500, inputTimeoutMs: 5_000 });
