// `npm run fuzz -- [--target NAME]… [--seconds 600] [--seed N [--path P]] [--runs N] [--batch N]`: the
// fuzz targets for as long as asked (CI runs each for a few seconds, test/fuzz/). Each target first
// replays its corpus and regressions, then fuzzes from the seed (random unless given). A failing input
// is written to fuzz/regressions/<target>/open-<hash>.<ext> and printed with the command that replays
// it; the exit code is 1 when any target failed.
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

// Before the targets load the logger: a fuzz run's refusals would otherwise flood stderr.
process.env.WEFT_LOG_LEVEL ??= 'silent';
const { FUZZ_TARGETS } = await import('./targets/index.js');
const { inputFiles, saveRegression } = await import('./input-files.js');
const { checkFixedInput, describeFailure, runFuzz } = await import('./run-fuzz.js');

const { values } = parseArgs({
  options: {
    target: { type: 'string', multiple: true },
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    path: { type: 'string' },
    runs: { type: 'string', default: String(Number.MAX_SAFE_INTEGER) },
    batch: { type: 'string', default: '200' },
  },
});
const names = values.target ?? FUZZ_TARGETS.map((t) => t.name);
const unknown = names.filter((n) => !FUZZ_TARGETS.some((t) => t.name === n));
if (unknown.length > 0) {
  console.error(
    `unknown target ${unknown.join(', ')}; targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')}`,
  );
  process.exit(2);
}
/** One input may take this long before it counts as a hang (servers answer within milliseconds). */
const INPUT_TIMEOUT_MS = 15_000;

let failed = false;
for (const target of FUZZ_TARGETS.filter((t) => names.includes(t.name))) {
  const session = await target.start();
  try {
    const seeds: unknown[] = [];
    for (const folder of ['corpus', 'regressions'] as const) {
      for (const file of inputFiles(target.name, folder)) {
        const input = target.decode(file.name, file.bytes);
        // Mutations start from the corpus alone, so a seed and path replay the same input however many
        // regressions are added since.
        if (folder === 'corpus') seeds.push(input);
        try {
          await checkFixedInput(session, input, INPUT_TIMEOUT_MS);
        } catch (err) {
          if (!file.open) failed = true;
          console.log(
            `${target.name}: ${folder}/${file.name} fails${file.open ? ' (open)' : ''}: ${String(err)}`,
          );
        }
      }
    }
    const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed);
    const seconds = Number(values.seconds);
    const batchRuns = Number(values.batch);
    console.log(`${target.name}: fuzzing for ${seconds} s from seed ${seed}`);
    const started = Date.now();
    const report = await runFuzz(session, seeds, {
      timeMs: seconds * 1000,
      maxRuns: Number(values.runs),
      batchRuns,
      inputTimeoutMs: INPUT_TIMEOUT_MS,
      seed,
      path: values.path,
    });
    const rate = Math.round(report.runs / ((Date.now() - started) / 1000));
    if (report.failure) {
      failed = true;
      console.log(describeFailure(target, report.failure, batchRuns));
      if (report.failure.input !== undefined)
        console.log(`saved as ${saveRegression(target.name, target.encode(report.failure.input))}`);
    } else {
      console.log(
        `${target.name}: ${report.runs} inputs (${rate}/s) in ${report.batches} batches, no failure`,
      );
    }
  } finally {
    await session.close();
  }
}
process.exit(failed ? 1 : 0);
