// What a V8 heap snapshot (.heapsnapshot, from v8.writeHeapSnapshot) spends its bytes on: self sizes
// summed by node type and name (constructor for objects, the kind of backing store for arrays; strings
// together), largest first. Read in chunks, so a snapshot larger than V8's longest string can be read;
// only the string table is parsed whole.
import { closeSync, openSync, readSync } from 'node:fs';

export interface HeapSummaryRow {
  /** `object Foo`, `array (object properties)`, `string`, `code`, … */
  readonly what: string;
  readonly selfBytes: number;
  readonly count: number;
  readonly bytesPerPod: number;
}

interface SnapshotMeta {
  readonly node_fields: readonly string[];
  readonly node_types: readonly (readonly string[] | string)[];
}

const CHUNK = 16 * 2 ** 20;
const STRING_TYPES = new Set(['string', 'concatenated string', 'sliced string']);

/** Reads the file forward in chunks; `find` moves past a marker, `numbers` streams an integer array. */
class Reader {
  readonly #fd: number;
  #buffer = Buffer.alloc(0);
  #at = 0;

  constructor(path: string) {
    this.#fd = openSync(path, 'r');
  }

  close(): void {
    closeSync(this.#fd);
  }

  #more(): boolean {
    const chunk = Buffer.alloc(CHUNK);
    const n = readSync(this.#fd, chunk, 0, CHUNK, null);
    if (n === 0) return false;
    this.#buffer = Buffer.concat([this.#buffer.subarray(this.#at), chunk.subarray(0, n)]);
    this.#at = 0;
    return true;
  }

  /** The text before `marker`, the reader left just past it. */
  until(marker: string, keep = true): string {
    const parts: Buffer[] = [];
    for (;;) {
      const i = this.#buffer.indexOf(marker, this.#at);
      if (i >= 0) {
        if (keep) parts.push(this.#buffer.subarray(this.#at, i));
        this.#at = i + marker.length;
        return keep ? Buffer.concat(parts).toString('utf8') : '';
      }
      // Keep a marker's length of the tail: the marker may straddle two chunks.
      const safe = Math.max(this.#at, this.#buffer.length - marker.length);
      if (keep) parts.push(this.#buffer.subarray(this.#at, safe));
      this.#at = safe;
      if (!this.#more()) throw new Error(`heap snapshot: ${marker} not found`);
    }
  }

  /** Calls `each` with every integer up to the closing `]`. */
  numbers(each: (value: number) => void): void {
    let value = 0;
    let digits = false;
    for (;;) {
      const buffer = this.#buffer;
      for (let i = this.#at; i < buffer.length; i += 1) {
        const c = buffer[i] as number;
        if (c >= 48 && c <= 57) {
          value = value * 10 + (c - 48);
          digits = true;
        } else {
          if (digits) each(value);
          value = 0;
          digits = false;
          if (c === 93) {
            this.#at = i + 1;
            return;
          }
        }
      }
      this.#at = buffer.length;
      if (!this.#more()) throw new Error('heap snapshot: unterminated number array');
    }
  }

  /** Everything left. */
  rest(): string {
    while (this.#more());
    return this.#buffer.subarray(this.#at).toString('utf8');
  }
}

export function summarizeHeapSnapshot(path: string, pods: number, top = 20): HeapSummaryRow[] {
  const reader = new Reader(path);
  try {
    const header = JSON.parse(`${reader.until('"nodes":[').trim().replace(/,$/, '')}}`) as {
      snapshot: { meta: SnapshotMeta };
    };
    const { node_fields: fields, node_types: types } = header.snapshot.meta;
    const typeNames = types[0] as readonly string[];
    const width = fields.length;
    const typeAt = fields.indexOf('type');
    const nameAt = fields.indexOf('name');
    const sizeAt = fields.indexOf('self_size');
    const totals = new Map<string, { type: string; name: number; bytes: number; count: number }>();
    let field = 0;
    let type = '';
    let name = 0;
    reader.numbers((value) => {
      if (field === typeAt) type = typeNames[value] ?? String(value);
      else if (field === nameAt) name = value;
      else if (field === sizeAt) {
        const byName = !STRING_TYPES.has(type) && type !== 'number';
        const key = byName ? `${type}\u0000${name}` : type;
        const entry = totals.get(key) ?? { type, name: byName ? name : -1, bytes: 0, count: 0 };
        entry.bytes += value;
        entry.count += 1;
        totals.set(key, entry);
      }
      field = (field + 1) % width;
    });
    reader.until('"strings":', false);
    const text = reader.rest().trim();
    const strings = JSON.parse(text.slice(0, text.lastIndexOf(']') + 1)) as string[];
    return [...totals.values()]
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, top)
      .map((entry) => ({
        what: entry.name < 0 ? entry.type : `${entry.type} ${(strings[entry.name] ?? '?').slice(0, 60)}`,
        selfBytes: entry.bytes,
        count: entry.count,
        bytesPerPod: Math.round(entry.bytes / pods),
      }));
  } finally {
    reader.close();
  }
}
