// What a fuzz target is: something that starts the code under test (in-process, on loopback when it is
// a server), offers fast-check inputs (generated, and mutated from its corpus), checks one input at a
// time, and after each batch proves it still serves a well-formed request and holds nothing it should
// not. `runFuzz` (run-fuzz.ts) drives a target; test/fuzz/ and `npm run fuzz` are its two callers.
import type fc from 'fast-check';

/** How an input is kept in a corpus or regression file. */
export interface EncodedInput {
  /** File name ending, e.g. `.pem`, `.yaml`, `.json`; decode() reads it back from the name. */
  readonly extension: string;
  readonly bytes: Buffer;
}

/**
 * A fuzz target. Its methods are declared as methods (not function properties) so that a target of any
 * input type fits the runner's `FuzzTarget<unknown>`.
 */
export interface FuzzTarget<Input> {
  /** The folder name under fuzz/corpus and fuzz/regressions, and `--target` of `npm run fuzz`. */
  readonly name: string;
  /** Starts what inputs are fed to; pure targets start nothing. */
  start(): Promise<FuzzSession<Input>>;
  /** Reads a corpus or regression file (its name says what kind of input it holds). */
  decode(file: string, bytes: Buffer): Input;
  encode(input: Input): EncodedInput;
}

export interface FuzzSession<Input> {
  /** The inputs to try: generated ones, and mutations of `seeds` (the corpus, decoded). */
  arbitrary(seeds: readonly Input[]): fc.Arbitrary<Input>;
  /**
   * Feeds one input and resolves once the target has handled it; rejects, saying why, when the target
   * misbehaved (threw what it must not, answered what it must not, did not answer in time).
   */
  check(input: Input): Promise<void>;
  /** Between batches: a well-formed control request still succeeds and nothing was leaked. */
  healthy(): Promise<void>;
  close(): Promise<void>;
}
