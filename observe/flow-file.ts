// A saved flow file (`weft observe -o json > flows.jsonl`): one JSON line per event, as the agents' and
// waypoints' `/flows` streams send them, including their `lost` lines (events a reader missed). Each line
// is read by the one parser in core/flows/event.ts; a bad line fails the whole file, naming file and line,
// since a map or a policy built from part of a file would look complete and be wrong.
import { readFileSync } from 'node:fs';
import { isFlowEvent, parseFlowLine, type FlowEvent } from '../core/flows/event.js';

export interface FlowFile {
  readonly events: FlowEvent[];
  /** How many events the recording missed, summed over its `lost` lines. */
  readonly lostEvents: number;
  /** How many `lost` lines there were. */
  readonly lostLines: number;
}

/** A line of a flow file that is not a flow event; `file:line: reason`. */
export class FlowFileError extends Error {
  constructor(
    readonly file: string,
    /** 1-based. */
    readonly line: number,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(`${file}:${line}: ${reason}`, cause === undefined ? undefined : { cause });
    this.name = 'FlowFileError';
  }
}

/** The events of a flow file's text; `file` names it in errors. Blank lines are allowed. */
export function parseFlowFile(text: string, file: string): FlowFile {
  const events: FlowEvent[] = [];
  let lostEvents = 0;
  let lostLines = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/\r$/, '');
    if (line.trim() === '') continue;
    let parsed;
    try {
      parsed = parseFlowLine(line);
    } catch (err) {
      throw new FlowFileError(file, i + 1, (err as Error).message, err);
    }
    if (isFlowEvent(parsed)) {
      events.push(parsed);
    } else {
      lostEvents += parsed.count;
      lostLines++;
    }
  }
  return { events, lostEvents, lostLines };
}

/** Reads and parses a flow file. I/O errors are thrown as they are (they name the path). */
export function readFlowFile(path: string): FlowFile {
  return parseFlowFile(readFileSync(path, 'utf8'), path);
}
