// A fuzz target under tap: every corpus and regression file as a fixed test, then a bounded fuzz run
// from a fixed seed per target, so the same commit passes or fails CI the same way (a random seed made CI
// fail on a bug the commit did not touch). Exploring new inputs is `npm run fuzz`'s job (random seeds,
// as long as asked); WEFT_FUZZ_SEED=N runs this test from another seed, WEFT_FUZZ_SEED=random from a
// fresh one.
import { createHash, randomInt } from 'node:crypto';
import type { Test } from 'tap';
import type { FuzzTarget } from '../../fuzz/fuzz-target.js';
import { inputFiles, type InputFolder } from '../../fuzz/input-files.js';
import { checkFixedInput, describeFailure, runFuzz } from '../../fuzz/run-fuzz.js';

export interface CiBudget {
  readonly timeMs: number;
  readonly maxRuns: number;
  readonly batchRuns: number;
  readonly inputTimeoutMs: number;
}

export async function fuzzTargetTest<Input>(
  t: Test,
  target: FuzzTarget<Input>,
  budget: CiBudget,
): Promise<void> {
  const session = await target.start();
  t.teardown(() => session.close());
  const seeds: Input[] = [];
  for (const folder of ['corpus', 'regressions'] satisfies InputFolder[]) {
    for (const file of inputFiles(target.name, folder)) {
      const input = target.decode(file.name, file.bytes);
      // Mutations start from the corpus alone, so a seed and path replay the same input however many
      // regressions are added since.
      if (folder === 'corpus') seeds.push(input);
      const options = file.open ? { todo: 'an open regression: its fix has not landed' } : {};
      await t.test(`${folder}/${file.name}`, options, async (t) => {
        await checkFixedInput(session, input, budget.inputTimeoutMs);
        t.pass('handled as the target requires');
      });
    }
  }
  await t.test('still healthy after the fixed inputs', async (t) => {
    await session.healthy();
    t.pass('a control request succeeds');
  });
  const seed = fuzzSeed(target.name, process.env.WEFT_FUZZ_SEED);
  await t.test(
    `fuzz for up to ${budget.timeMs} ms from seed ${seed} (WEFT_FUZZ_SEED=${seed} replays)`,
    async (t) => {
      const report = await runFuzz(session, seeds, { ...budget, seed });
      if (report.failure) t.fail(describeFailure(target, report.failure, budget.batchRuns));
      else t.pass(`${report.runs} generated and mutated inputs in ${report.batches} batches, no failure`);
    },
  );
}

function fuzzSeed(target: string, requested: string | undefined): number {
  if (requested === 'random') return randomInt(2 ** 31);
  if (requested !== undefined) return Number(requested);
  return createHash('sha256').update(target).digest().readUInt32BE(0) & 0x7fffffff;
}
