// Structured logging: one JSON line per event, a fixed `msg`, dotted fields, a child logger per component.
import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

export type Logger = PinoLogger;

const LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function levelFromEnv(): LevelWithSilent {
  const wanted = process.env.WEFT_LOG_LEVEL ?? 'info';
  return (LEVELS as readonly string[]).includes(wanted) ? (wanted as LevelWithSilent) : 'info';
}

/** The process-wide root logger; writes to stderr so stdout stays free for command output. */
export const rootLogger: Logger = pino(
  { level: levelFromEnv(), base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
  pino.destination({ fd: 2, sync: true }),
);

/** A logger named for its component, following the source path (`ca.server`, `agent.identity`). */
export function componentLogger(component: string): Logger {
  return rootLogger.child({ component });
}
