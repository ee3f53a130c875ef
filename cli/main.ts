#!/usr/bin/env node
// `weft`: one entry point for every part. Reads argv, sets the exit code; the parts do the work.
import { WeftError, errorMessage } from '../core/errors.js';
import { caCommand, CA_USAGE } from './ca.js';
import { agentCommand, AGENT_USAGE } from './agent.js';
import { demoCommand, DEMO_USAGE } from './demo.js';
import { benchCommand, BENCH_USAGE } from './bench.js';
import { labCommand, LAB_USAGE } from './lab.js';
import { applyCommand, labelCommand, APPLY_USAGE } from './apply.js';
import { waypointCommand, WAYPOINT_USAGE } from './waypoint.js';
import { observeCommand, OBSERVE_USAGE } from './observe.js';
import { explainCommand, EXPLAIN_USAGE } from './explain.js';
import { UsageError } from './flags.js';
import { rootLogger } from '../core/log.js';

const USAGE = `usage: weft <command> …

${CA_USAGE}
${AGENT_USAGE}
${DEMO_USAGE}
${BENCH_USAGE}
${LAB_USAGE}
${APPLY_USAGE}
${WAYPOINT_USAGE}
${OBSERVE_USAGE}
${EXPLAIN_USAGE}`;

/** Commands that print a report: the config store's info lines would only clutter their stderr. */
function quietUnlessAsked(): void {
  if (process.env.WEFT_LOG_LEVEL === undefined) rootLogger.level = 'warn';
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'ca':
        await caCommand(rest);
        return 0;
      case 'agent':
        await agentCommand(rest);
        return 0;
      case 'bench':
        return await benchCommand(rest);
      case 'demo':
        return await demoCommand(rest);
      case 'lab':
        return await labCommand(rest);
      case 'apply':
        return applyCommand(rest);
      case 'label':
        return labelCommand(rest);
      case 'waypoint':
        return await waypointCommand(rest);
      case 'observe':
        quietUnlessAsked();
        return await observeCommand(rest);
      case 'explain':
        quietUnlessAsked();
        return await explainCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
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
