// Crashes that escape the code under test as process events rather than as a rejected check: an
// 'uncaughtException' thrown from a socket callback, or an 'unhandledRejection'. While the watch is on
// they are collected instead of ending the process, so the input that caused one can be reported (and
// shrunk) like any other failure.
export class CrashWatch {
  readonly #seen: Error[] = [];
  readonly #onCrash = (err: unknown): void => {
    this.#seen.push(err instanceof Error ? err : new Error(`non-Error thrown: ${String(err)}`));
  };

  constructor() {
    process.on('uncaughtException', this.#onCrash);
    process.on('unhandledRejection', this.#onCrash);
  }

  /**
   * Throws the first crash seen since the last call, after one turn of the event loop so a crash the
   * last input set off in a later callback is seen too.
   */
  async rethrow(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const first = this.#seen[0];
    this.#seen.length = 0;
    if (first)
      throw new Error(`the process would have crashed: ${first.stack ?? first.message}`, { cause: first });
  }

  stop(): void {
    process.off('uncaughtException', this.#onCrash);
    process.off('unhandledRejection', this.#onCrash);
  }
}
