// The bounded in-memory ring of flow events that an agent or waypoint keeps (Hubble's ring buffer), and
// the readers that follow it.
//
// Invariants:
// - Memory is bounded by `capacity` events, whatever the readers do: a reader holds a position in the
//   ring, never a queue of its own. A reader that falls more than `capacity` behind skips ahead and is
//   told how many events it lost.
// - Recording costs the data path an object store and, at most once per event-loop turn, a scheduled
//   flush; it never writes to a reader, never serializes and never waits. Readers are served from that
//   flush, each at most `batch` events per turn, and only while their sink accepts more without
//   buffering (`write` returned true): a slow reader stops being written to, it is not buffered for.
// - At most `maxReaders` readers at once; more are refused (FlowReadersExhausted).
import { flowEventJson, type FlowEvent, type FlowReporter } from './event.js';

export const DEFAULT_FLOW_RING_CAPACITY = 4096;
export const DEFAULT_MAX_FLOW_READERS = 16;
/** Events a reader gets per event-loop turn at most, so one fast reader cannot hog the loop. */
const READER_BATCH = 256;
/** Lines are joined into writes of about this many bytes (what a reader's socket buffers before drain). */
const WRITE_BYTES = 16 * 1024;

/** An event as its producer builds it; the ring adds the sequence number and the reporter. */
export type FlowEventInput = Omit<FlowEvent, 'seq' | 'reporter'>;

/**
 * Where a reader's lines go: an HTTP response, in practice. `write` returns false once the sink holds
 * more than it wants buffered; the reader then waits for `resume()`.
 */
export interface FlowSink {
  write(line: string): boolean;
}

export interface FlowReaderOptions {
  /** Start with up to this many of the events already in the ring (0: only new ones). */
  readonly last: number;
  /** Keep following new events; false ends the reader once it has caught up (`onEnd`). */
  readonly follow: boolean;
  readonly filter: (event: FlowEvent) => boolean;
  readonly sink: FlowSink;
  /** Called once when a non-following reader has written everything it was due. */
  readonly onEnd?: () => void;
}

export class FlowReadersExhausted extends Error {
  constructor(max: number) {
    super(`${max} flow readers are already connected; try again later`);
    this.name = 'FlowReadersExhausted';
  }
}

/** One reader's position in the ring. */
export class FlowReader {
  #cursor: number;
  #paused = false;
  #closed = false;
  readonly #ring: FlowRing;
  readonly #options: FlowReaderOptions;
  /** For a non-following reader: the sequence number it stops before. */
  readonly #endBefore: number;

  constructor(ring: FlowRing, cursor: number, endBefore: number, options: FlowReaderOptions) {
    this.#ring = ring;
    this.#cursor = cursor;
    this.#endBefore = endBefore;
    this.#options = options;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The sink drained: carry on from where the reader stopped. */
  resume(): void {
    if (this.#closed || !this.#paused) return;
    this.#paused = false;
    this.#ring.scheduleFlush();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ring.remove(this);
  }

  /** Writes what is due, up to the batch; returns true when more is waiting. Called by the ring only. */
  pump(slots: readonly (FlowEvent | undefined)[], next: number, capacity: number): boolean {
    if (this.#closed || this.#paused) return false;
    const { filter, sink, follow } = this.#options;
    const stop = follow ? next : Math.min(next, this.#endBefore);
    const oldest = next - capacity;
    // Lines go out joined, up to WRITE_BYTES a write: one write per event would cost a fast reader's
    // agent a write (and an HTTP chunk) per event.
    let chunk = '';
    if (this.#cursor < oldest) {
      chunk = lostLine(this.#ring.reporter, oldest - this.#cursor);
      this.#cursor = oldest;
    }
    let budget = READER_BATCH;
    while (this.#cursor < stop && budget > 0) {
      const event = slots[this.#cursor % capacity]!;
      this.#cursor++;
      if (!filter(event)) continue;
      budget--;
      chunk += flowEventJson(event);
      if (chunk.length >= WRITE_BYTES) {
        const more = sink.write(chunk);
        chunk = '';
        if (!more) {
          this.#paused = true;
          return false;
        }
      }
    }
    if (chunk !== '' && !sink.write(chunk)) {
      this.#paused = true;
      return false;
    }
    if (this.#cursor < stop) return true;
    if (!follow) {
      this.close();
      this.#options.onEnd?.();
    }
    return false;
  }
}

function lostLine(reporter: FlowReporter, count: number): string {
  return JSON.stringify({ type: 'lost', reporter, count }) + '\n';
}

export interface FlowRingOptions {
  readonly reporter: FlowReporter;
  readonly capacity?: number;
  readonly maxReaders?: number;
}

/** The flow events of one agent or waypoint. */
export class FlowRing {
  readonly reporter: FlowReporter;
  readonly capacity: number;
  readonly maxReaders: number;
  readonly #slots: (FlowEvent | undefined)[];
  /** The sequence number of the next event (= events recorded so far). */
  #next = 0;
  readonly #readers = new Set<FlowReader>();
  #flushScheduled = false;

  constructor(options: FlowRingOptions) {
    this.reporter = options.reporter;
    this.capacity = options.capacity ?? DEFAULT_FLOW_RING_CAPACITY;
    this.maxReaders = options.maxReaders ?? DEFAULT_MAX_FLOW_READERS;
    if (!Number.isInteger(this.capacity) || this.capacity < 1)
      throw new RangeError(`flow ring capacity must be a positive integer, not ${this.capacity}`);
    this.#slots = new Array<FlowEvent | undefined>(this.capacity).fill(undefined);
  }

  /** Events recorded since start. */
  get recorded(): number {
    return this.#next;
  }

  get readerCount(): number {
    return this.#readers.size;
  }

  /** Events held now (at most `capacity`). */
  get size(): number {
    return Math.min(this.#next, this.capacity);
  }

  record(input: FlowEventInput): FlowEvent {
    const event: FlowEvent = { seq: this.#next, reporter: this.reporter, ...input };
    this.#slots[this.#next % this.capacity] = event;
    this.#next++;
    if (this.#readers.size > 0) this.scheduleFlush();
    return event;
  }

  /** The events held now, oldest first, that pass `filter`. */
  snapshot(filter: (event: FlowEvent) => boolean = () => true): FlowEvent[] {
    const out: FlowEvent[] = [];
    for (let seq = this.#next - this.size; seq < this.#next; seq++) {
      const event = this.#slots[seq % this.capacity]!;
      if (filter(event)) out.push(event);
    }
    return out;
  }

  /** A new reader; throws FlowReadersExhausted beyond `maxReaders`. */
  read(options: FlowReaderOptions): FlowReader {
    if (this.#readers.size >= this.maxReaders) throw new FlowReadersExhausted(this.maxReaders);
    const start = Math.max(this.#next - this.size, this.#next - Math.max(0, options.last));
    const reader = new FlowReader(this, start, this.#next, options);
    this.#readers.add(reader);
    this.scheduleFlush();
    return reader;
  }

  /** @internal for FlowReader */
  remove(reader: FlowReader): void {
    this.#readers.delete(reader);
  }

  /** @internal for FlowReader */
  scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    let more = false;
    for (const reader of this.#readers) if (reader.pump(this.#slots, this.#next, this.capacity)) more = true;
    if (more) this.scheduleFlush();
  };
}
