// The objects of a whole folder of manifest files, and the batches that move a sink from what it was
// last given to what the files say now. Pure bookkeeping, no I/O, so every rule here is unit-tested.
//
// Rules:
// - Each object belongs to one file. If two files define it, the file that already owned it keeps it;
//   if neither did, the first by path wins. The other definition is rejected, naming both files.
// - A file's contents already carry its last good records (see manifest-file.ts); an object disappears
//   only when no file defines it any more, or its file is removed.
// - A batch holds only differences: unchanged records are not re-sent, and rejections that no longer
//   hold are cleared by key.
import { rejectionKey, type Rejection } from '../convert/rejection.js';
import { keyOf, type ConfigRecord } from '../model/index.js';
import type { ManifestFileContents } from './manifest-file.js';
import type { ConfigBatch } from './source.js';

export class ManifestSet {
  readonly #files = new Map<string, ManifestFileContents>();
  /** keyString -> owning file, as of the last batch. */
  #owners = new Map<string, string>();
  /** keyString -> record, as last sent. */
  #applied = new Map<string, ConfigRecord>();
  /** rejectionKey -> rejection, as last sent. */
  #appliedRejections = new Map<string, Rejection>();

  contents(file: string): ManifestFileContents | undefined {
    return this.#files.get(file);
  }

  files(): Iterable<string> {
    return this.#files.keys();
  }

  setFile(file: string, contents: ManifestFileContents): void {
    this.#files.set(file, contents);
  }

  removeFile(file: string): void {
    this.#files.delete(file);
  }

  /** The batch from the last state taken to the current one; afterwards that is the state taken. */
  takeBatch(): ConfigBatch {
    const { records, owners, rejections } = this.#resolve();
    const upserts: ConfigRecord[] = [];
    for (const [id, record] of records) {
      const sent = this.#applied.get(id);
      if (sent === undefined || !sameRecord(sent, record)) upserts.push(record);
    }
    const deletes = [...this.#applied].filter(([id]) => !records.has(id)).map(([, record]) => keyOf(record));
    const newRejections = [...rejections].filter(([id, rejection]) => {
      const sent = this.#appliedRejections.get(id);
      return sent === undefined || JSON.stringify(sent) !== JSON.stringify(rejection);
    });
    const clearedRejections = [...this.#appliedRejections.keys()].filter((id) => !rejections.has(id));
    this.#applied = records;
    this.#owners = owners;
    this.#appliedRejections = rejections;
    return {
      upserts,
      deletes,
      rejections: newRejections.map(([, rejection]) => rejection),
      clearedRejections,
    };
  }

  #resolve(): {
    records: Map<string, ConfigRecord>;
    owners: Map<string, string>;
    rejections: Map<string, Rejection>;
  } {
    const files = [...this.#files.keys()].sort();
    const claimants = new Map<string, string[]>();
    const rejections = new Map<string, Rejection>();
    for (const file of files) {
      const contents = this.#files.get(file);
      if (contents === undefined) continue;
      for (const id of contents.claims.keys()) {
        const list = claimants.get(id);
        if (list === undefined) claimants.set(id, [file]);
        else list.push(file);
      }
      for (const rejection of contents.rejections) rejections.set(rejectionKey(rejection), rejection);
    }
    const records = new Map<string, ConfigRecord>();
    const owners = new Map<string, string>();
    for (const [id, candidates] of claimants) {
      const previousOwner = this.#owners.get(id);
      const owner =
        previousOwner !== undefined && candidates.includes(previousOwner) ? previousOwner : candidates[0];
      if (owner === undefined) continue;
      owners.set(id, owner);
      const record = this.#files.get(owner)?.records.get(id);
      if (record !== undefined) records.set(id, record);
      for (const other of candidates) {
        if (other === owner) continue;
        const site = this.#files.get(other)?.claims.get(id);
        if (site === undefined) continue;
        const duplicate: Rejection = {
          ...site.key,
          field: '',
          reason: `is also defined in ${owner}, whose definition is used; remove one of them`,
          file: other,
          document: site.document,
          ...(site.item === undefined ? {} : { item: site.item }),
        };
        rejections.set(rejectionKey(duplicate), duplicate);
      }
    }
    return { records, owners, rejections };
  }
}

/** Records are plain frozen data built in a fixed field order, so equal JSON means equal records. */
function sameRecord(a: ConfigRecord, b: ConfigRecord): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

export function isEmptyBatch(batch: ConfigBatch): boolean {
  return (
    batch.upserts.length === 0 &&
    batch.deletes.length === 0 &&
    batch.rejections.length === 0 &&
    (batch.clearedRejections?.length ?? 0) === 0
  );
}
