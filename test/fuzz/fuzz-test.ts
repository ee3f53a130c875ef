// A fuzz target under tap: every corpus and regression file as a fixed test, then a bounded fuzz run
// from a fresh random seed each time (WEFT_FUZZ_SEED=N replays a run), so CI covers new inputs on every
// run while staying within its time budget. `npm run fuzz` runs the same targets for longer.
import { randomInt } from 'node:crypto';
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
  const seed =
    process.env.WEFT_FUZZ_SEED === undefined ? randomInt(2 ** 31) : Number(process.env.WEFT_FUZZ_SEED);
  await t.test(
    `fuzz for up to ${budget.timeMs} ms from seed ${seed} (WEFT_FUZZ_SEED=${seed} replays)`,
    async (t) => {
      const report = await runFuzz(session, seeds, { ...budget, seed });
      if (report.failure) t.fail(describeFailure(target, report.failure, budget.batchRuns));
      else t.pass(`${report.runs} generated and mutated inputs in ${report.batches} batches, no failure`);
    },
  );
}
