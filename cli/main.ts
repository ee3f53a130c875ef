#!/usr/bin/env node
// `weft`: one entry point for every part. Reads argv, sets the exit code; the parts do the work.
import { WeftError, errorMessage } from '../core/errors.js';
import { UsageError } from './flags.js';
import { rootLogger } from '../core/log.js';

// Each command's module is loaded when it runs: a part starts without loading every other part's
// dependencies (a restarted agent serves sooner; module loading was most of its start-up).

/** Every command's usage, for help and usage errors (loads every module). */
async function usage(): Promise<string> {
  const parts = await Promise.all([
    import('./ca.js').then((m) => m.CA_USAGE),
    import('./agent.js').then((m) => m.AGENT_USAGE),
    import('./demo.js').then((m) => m.DEMO_USAGE),
    import('./bench.js').then((m) => m.BENCH_USAGE),
    import('./lab.js').then((m) => m.LAB_USAGE),
    import('./apply.js').then((m) => m.APPLY_USAGE),
    import('./waypoint.js').then((m) => m.WAYPOINT_USAGE),
    import('./observe.js').then((m) => m.OBSERVE_USAGE),
    import('./explain.js').then((m) => m.EXPLAIN_USAGE),
  ]);
  return `usage: weft <command> …\n\n${parts.join('\n')}`;
}

/** Commands that print a report: the config store's info lines would only clutter their stderr. */
function quietUnlessAsked(): void {
  if (process.env.WEFT_LOG_LEVEL === undefined) rootLogger.level = 'warn';
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'ca':
        await (await import('./ca.js')).caCommand(rest);
        return 0;
      case 'agent':
        await (await import('./agent.js')).agentCommand(rest);
        return 0;
      case 'bench':
        return await (await import('./bench.js')).benchCommand(rest);
      case 'demo':
        return await (await import('./demo.js')).demoCommand(rest);
      case 'lab':
        return await (await import('./lab.js')).labCommand(rest);
      case 'apply':
        return (await import('./apply.js')).applyCommand(rest);
      case 'label':
        return (await import('./apply.js')).labelCommand(rest);
      case 'waypoint':
        return await (await import('./waypoint.js')).waypointCommand(rest);
      case 'observe':
        quietUnlessAsked();
        return await (await import('./observe.js')).observeCommand(rest);
      case 'explain':
        quietUnlessAsked();
        return await (await import('./explain.js')).explainCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${await usage()}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${await usage()}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`weft: ${err.message}\n`);
      return 2;
    }
    const code = err instanceof WeftError ? ` [${err.code}]` : '';
    process.stderr.write(`weft: ${errorMessage(err)}${code}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
// A failed start may leave listeners or timers behind; a half-started daemon must not linger.
if (code !== 0) process.exit(code);
process.exitCode = code;
