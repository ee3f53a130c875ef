// Drives one fuzz target: its inputs in batches of fast-check runs, the target's health check after each
// batch, process crashes counted as failures, within a time and a run budget. A failure comes back with
// what replays it: the batch's seed and fast-check's counterexample path (`--seed S --path P`), the
// input itself, and the error.
import fc from 'fast-check';
import { CrashWatch } from './crash-watch.js';
import type { FuzzSession, FuzzTarget } from './fuzz-target.js';

export interface FuzzBudget {
  /** Wall time for generating and checking inputs (and shrinking a failure), in ms. */
  readonly timeMs: number;
  /** Most inputs in all. */
  readonly maxRuns: number;
  /** Inputs per batch; the target's health is checked after each batch. */
  readonly batchRuns: number;
  /** One input taking longer than this is a hang. */
  readonly inputTimeoutMs: number;
  /** The first batch's seed; batch i runs from `seed + i`. */
  readonly seed: number;
  /** Replays one counterexample: `seed` is then the failing batch's seed. */
  readonly path?: string | undefined;
}

export interface FuzzFailure {
  /** The seed of the batch that failed: with `path`, what replays the input. */
  readonly batchSeed: number;
  /** fast-check's counterexample path; undefined when the health check after the batch failed. */
  readonly path: string | undefined;
  /** The (shrunk) failing input; undefined for a failed health check. */
  readonly input: unknown;
  readonly error: unknown;
}

export interface FuzzReport {
  readonly runs: number;
  readonly batches: number;
  readonly failure?: FuzzFailure;
}

/** Too little time left for a batch to run an input: fast-check counts an empty interrupted run as failed. */
const MIN_BATCH_MS = 50;

export async function runFuzz<Input>(
  session: FuzzSession<Input>,
  seeds: readonly Input[],
  budget: FuzzBudget,
): Promise<FuzzReport> {
  const watch = new CrashWatch();
  const deadline = Date.now() + budget.timeMs;
  const arbitrary = session.arbitrary(seeds);
  const property = fc.asyncProperty(arbitrary, async (input) => {
    await session.check(input);
    await watch.rethrow();
  });
  let runs = 0;
  let batches = 0;
  try {
    while (runs < budget.maxRuns && deadline - Date.now() > MIN_BATCH_MS) {
      const batchSeed = (budget.seed + batches) | 0;
      let details: fc.RunDetails<[Input]>;
      try {
        details = await fc.check(property, {
          seed: batchSeed,
          numRuns: Math.min(budget.batchRuns, budget.maxRuns - runs),
          ...(budget.path !== undefined && { path: budget.path }),
          plugins: limits<[Input]>(deadline - Date.now(), budget.inputTimeoutMs),
        });
      } catch (err) {
        // Only the fuzzer's own code throws here (an arbitrary that cannot build its value).
        const error = new Error(`the fuzzer failed to generate an input: ${String(err)}`, { cause: err });
        return { runs, batches, failure: { batchSeed, path: undefined, input: undefined, error } };
      }
      runs += details.numRuns;
      batches++;
      if (details.failed && details.counterexample !== null)
        return {
          runs,
          batches,
          failure: {
            batchSeed,
            path: details.counterexamplePath ?? undefined,
            input: details.counterexample[0],
            error: details.errorInstance,
          },
        };
      try {
        await session.healthy();
        await watch.rethrow();
      } catch (error) {
        return { runs, batches, failure: { batchSeed, path: undefined, input: undefined, error } };
      }
      if (details.interrupted || budget.path !== undefined) break;
    }
    return { runs, batches };
  } finally {
    watch.stop();
  }
}

/**
 * The time limits as fast-check plugins: the batch stops at the deadline (its runs so far count as
 * passed) and one input running longer than `inputTimeoutMs` fails. fast-check types its built-in
 * plugins as `Plugin<unknown>`, which `Parameters<Ts>` does not take for a generic `Ts`; they do not
 * look at the inputs, so the cast is sound.
 */
function limits<Ts>(remainingMs: number, inputTimeoutMs: number): fc.Plugin<Ts>[] {
  return [fc.interruptAfterTimeLimit(remainingMs), fc.timeout(inputTimeoutMs)] as fc.Plugin<Ts>[];
}

/** Checks one fixed input (a corpus or regression file) as the fuzzer would, crashes and hangs included. */
export async function checkFixedInput<Input>(
  session: FuzzSession<Input>,
  input: Input,
  timeoutMs: number,
): Promise<void> {
  const watch = new CrashWatch();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      session.check(input),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms (a hang)`)), timeoutMs);
      }),
    ]);
    await watch.rethrow();
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
}

/** What to print for a failure: the error, the input, and the command that replays it. */
export function describeFailure<Input>(
  target: FuzzTarget<Input>,
  failure: FuzzFailure,
  batchRuns: number,
): string {
  const error =
    failure.error instanceof Error ? (failure.error.stack ?? failure.error.message) : String(failure.error);
  if (failure.path === undefined)
    return [
      `${target.name}: the health check after a batch failed: ${error}`,
      `replay the batch: npm run fuzz -- --target ${target.name} --seed ${failure.batchSeed} --runs ${batchRuns}`,
    ].join('\n');
  const encoded = target.encode(failure.input as Input);
  return [
    `${target.name}: an input failed: ${error}`,
    `input: ${fc.stringify(failure.input).slice(0, 2000)}`,
    `as a regression file (${encoded.extension}, base64): ${encoded.bytes.toString('base64').slice(0, 100_000)}`,
    `replay: npm run fuzz -- --target ${target.name} --seed ${failure.batchSeed} --path ${failure.path}`,
  ].join('\n');
}
