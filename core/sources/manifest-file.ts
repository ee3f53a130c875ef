// One manifest file -> the records it defines and the rejections it earns. Pure: text in, contents out.
// YAML files may hold several documents (`---`); JSON files hold one object. Either may be a
// `kind: List` whose `items` are the objects.
import { parseAllDocuments } from 'yaml';
import { convertManifest, type ManifestOrigin } from '../convert/index.js';
import { isObject, shown } from '../convert/fields.js';
import type { Rejection } from '../convert/rejection.js';
import { keyOf, keyString, type ConfigRecord, type ObjectKey } from '../model/index.js';

/** Where in its file an object was defined. */
export interface DefinitionSite {
  readonly key: ObjectKey;
  readonly document: number;
  readonly item: number | undefined;
}

export interface ManifestFileContents {
  /** Records by keyString: converted now, or the last good one when this version of the object is invalid. */
  readonly records: ReadonlyMap<string, ConfigRecord>;
  /** Every object the file defines, valid or not, in order: for ownership and duplicate checks. */
  readonly claims: ReadonlyMap<string, DefinitionSite>;
  readonly rejections: readonly Rejection[];
}

export const EMPTY_FILE: ManifestFileContents = { records: new Map(), claims: new Map(), rejections: [] };

type Document =
  | { readonly document: number; readonly value: unknown }
  | { readonly document: number; readonly error: string };

/**
 * Converts a file's text. `previous` is what the file held before: objects that are now invalid keep
 * their previous record (last good keeps serving). If any document cannot be read at all (a syntax
 * error) or cannot be identified (its kind, apiVersion, metadata, name or namespace is invalid), every
 * previous object the other documents do not mention is kept too, since the broken document may well
 * still define it. Once every document is readable again, objects no document defines are dropped.
 */
export function readManifestFile(
  file: string,
  text: string,
  previous: ManifestFileContents = EMPTY_FILE,
): ManifestFileContents {
  const documents = file.endsWith('.json') ? parseJson(text) : parseYaml(text);
  const builder = new ContentsBuilder(file, previous);
  for (const doc of documents) {
    if ('error' in doc) builder.unreadable(doc.document, doc.error);
    else builder.add(doc.value, doc.document);
  }
  return builder.finish();
}

/** The contents of a file that could not be read at all (I/O error): all previous objects stay. */
export function unreadableFile(
  file: string,
  reason: string,
  previous: ManifestFileContents = EMPTY_FILE,
): ManifestFileContents {
  const builder = new ContentsBuilder(file, previous);
  builder.unreadable(undefined, reason);
  return builder.finish();
}

class ContentsBuilder {
  readonly #file: string;
  readonly #previous: ManifestFileContents;
  readonly #records = new Map<string, ConfigRecord>();
  readonly #claims = new Map<string, DefinitionSite>();
  readonly #rejections: Rejection[] = [];
  #keepPrevious = false;

  constructor(file: string, previous: ManifestFileContents) {
    this.#file = file;
    this.#previous = previous;
  }

  unreadable(document: number | undefined, reason: string): void {
    this.#keepPrevious = true;
    this.#rejections.push({
      kind: '',
      namespace: '',
      name: '',
      field: '',
      reason,
      file: this.#file,
      document,
    });
  }

  add(value: unknown, document: number): void {
    if (value === null || value === undefined) return; // an empty document, e.g. a trailing `---`
    if (isObject(value) && value.kind === 'List') {
      const { items } = value;
      if (Array.isArray(items)) {
        items.forEach((item: unknown, index) =>
          this.#addManifest(item, { file: this.#file, document, item: index }),
        );
      } else if (items !== undefined && items !== null) {
        // Its objects cannot be read, so they may be any the file defined before: keep them all.
        this.#keepPrevious = true;
        this.#rejections.push({
          kind: 'List',
          namespace: '',
          name: '',
          field: 'items',
          reason: `must be a list, got ${shown(items)}`,
          file: this.#file,
          document,
        });
      }
      return;
    }
    this.#addManifest(value, { file: this.#file, document });
  }

  #addManifest(manifest: unknown, origin: ManifestOrigin & { document: number }): void {
    const result = convertManifest(manifest, origin);
    if (result.outcome === 'ignored') return;
    if (result.outcome === 'converted') {
      const key = keyOf(result.record);
      if (this.#claim(key, origin)) this.#records.set(keyString(key), result.record);
      return;
    }
    if (result.key === undefined) {
      // What identifies the object is broken (no metadata, an invalid name, no kind…), so this document
      // may be any object the file defined before. As for a syntax error, keep them all rather than
      // delete the one it was.
      this.#keepPrevious = true;
      this.#rejections.push(result.rejection);
      return;
    }
    if (!this.#claim(result.key, origin)) return;
    this.#rejections.push(result.rejection);
    const lastGood = this.#previous.records.get(keyString(result.key));
    if (lastGood !== undefined) this.#records.set(keyString(result.key), lastGood);
  }

  /** Records that the file defines `key` here; false (and a rejection) if an earlier document did. */
  #claim(key: ObjectKey, origin: ManifestOrigin & { document: number }): boolean {
    const id = keyString(key);
    const earlier = this.#claims.get(id);
    if (earlier !== undefined) {
      this.#rejections.push({
        ...key,
        field: '',
        reason: `is defined twice in this file (first in doc ${earlier.document}); the first definition is used`,
        ...origin,
      });
      return false;
    }
    this.#claims.set(id, { key, document: origin.document, item: origin.item });
    return true;
  }

  finish(): ManifestFileContents {
    if (this.#keepPrevious) {
      for (const [id, site] of this.#previous.claims) {
        if (this.#claims.has(id)) continue;
        this.#claims.set(id, site);
        const lastGood = this.#previous.records.get(id);
        if (lastGood !== undefined) this.#records.set(id, lastGood);
      }
    }
    return { records: this.#records, claims: this.#claims, rejections: this.#rejections };
  }
}

function parseYaml(text: string): Document[] {
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text);
  } catch (err) {
    // The parser recurses on nesting; hostile input can exhaust the stack (RangeError) before it reports.
    return [
      { document: 1, error: `YAML error: ${firstLine(err instanceof Error ? err.message : String(err))}` },
    ];
  }
  return docs.map((doc, i): Document => {
    const document = i + 1;
    const error = doc.errors[0];
    if (error !== undefined) return { document, error: `YAML syntax error: ${firstLine(error.message)}` };
    try {
      return { document, value: doc.toJS() };
    } catch (err) {
      return {
        document,
        error: `YAML error: ${firstLine(err instanceof Error ? err.message : String(err))}`,
      };
    }
  });
}

function parseJson(text: string): Document[] {
  if (text.trim() === '') return [];
  try {
    return [{ document: 1, value: JSON.parse(text) as unknown }];
  } catch (err) {
    return [{ document: 1, error: `JSON syntax error: ${err instanceof Error ? err.message : String(err)}` }];
  }
}

/** The yaml library's messages end with a source excerpt over several lines; keep the sentence. */
function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/:$/, '');
}
