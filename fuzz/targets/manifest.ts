// Target `manifest`: the manifest parser. Two ways in: manifest objects (every kind, from the corpus,
// with fields set, retyped or deleted: manifest-edits.ts) straight into convertManifest, as the
// Kubernetes source hands them over; and raw file text (the corpus files mutated as bytes, with YAML
// and JSON tokens) through readManifestFile and a ManifestSet, as the file source reads a folder.
//
// The property: converted, rejected with a field and a reason, or ignored; never an exception, and
// within MAX_PARSE_MS. A converted record is frozen and serializable, and every consumer of the store
// (manifest-consumers.ts) handles it. A file's contents are consistent: each record is filed under its
// own key and claimed by the file.
import { extname } from 'node:path';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { convertManifest, formatRejection, type Rejection } from '../../core/convert/index.js';
import { keyOf, keyString, type ConfigRecord } from '../../core/model/index.js';
import { readManifestFile, type ManifestFileContents } from '../../core/sources/manifest-file.js';
import { ManifestSet } from '../../core/sources/manifest-set.js';
import type { FuzzSession, FuzzTarget } from '../fuzz-target.js';
import { inputFiles } from '../input-files.js';
import { mutatedBytes } from '../mutate.js';
import { applyEdit, manifestEdit } from './manifest-edits.js';
import { exerciseConsumers } from './manifest-consumers.js';

export type ManifestInput =
  /** One manifest, as the Kubernetes source passes it to convertManifest. */
  | { readonly kind: 'object'; readonly manifest: unknown }
  /** A file's text; its name's extension picks the parser (`.json`, else YAML). */
  | { readonly kind: 'file'; readonly name: string; readonly text: string };

/** Parsing is synchronous, so a slow input cannot be interrupted: it is measured and refused after. */
const MAX_PARSE_MS = 2_000;
/** Object inputs are kept as `<name>.object.json`; any other file is file text. */
const OBJECT_SUFFIX = '.object.json';

const YAML_TOKENS = [
  '---\n',
  '...\n',
  '- ',
  ': ',
  '? ',
  '&a ',
  '*a',
  '&b [*b]',
  '<<: *a\n',
  '{',
  '}',
  '[',
  ']',
  ',',
  '#',
  '|\n',
  '>-\n',
  '"',
  "'",
  '\\u0000',
  '\t',
  '\n  ',
  '!!binary ',
  '!!set ',
  '!!omap ',
  '!!timestamp ',
  '!!int ',
  '!!float ',
  '!!str ',
  '!!map ',
  '!!seq ',
  '!!null ',
  '!<tag:yaml.org,2002:str> ',
  '%YAML 1.1\n---\n',
  '%TAG ! tag:x,2000:\n---\n',
  '~',
  '.inf',
  '.nan',
  '0x1F',
  '0o17',
  '1e999',
  '-0',
  'yes',
  'on',
  'null',
  '9999999999999999999999',
  'kind: List\nitems: ',
  'apiVersion: v1\n',
  'kind: Pod\n',
];
const JSON_TOKENS = [
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '"',
  '\\"',
  '\\u0000',
  'null',
  'true',
  '1e999',
  '-0',
  '"__proto__"',
  '{"a":',
  '[[[[[[[[',
  '"kind":"List","items":',
  '"apiVersion":"v1",',
];

/** Values put after a `key: ` of the seed by the YAML-aware mutation: self-reference, tags, odd scalars. */
const YAML_VALUES = [
  '&r [*r]',
  '&r {k: *r}',
  '&r {k: [*r]}',
  '*missing',
  '!!binary aGVsbG8=',
  '!!set {a, b}',
  '!!omap [a: 1]',
  '!!timestamp 2001-12-14',
  '!!int 1',
  '!!float x',
  '!!map []',
  '!!str',
  '.nan',
  '.inf',
  '-.inf',
  '~',
  '[]',
  '{}',
  "''",
  '""',
  '0x7fffffffffffffff',
  '1e999',
  '9007199254740993',
  '-0',
  '0o777',
  '+12',
  '1_000',
  '2001-12-14t21:59:43.10-05:00',
  '|\n  multi\n  line',
  'a: b: c',
  '[a, [b, [c]]]',
  '{a: 1, a: 2}',
];

/** Replaces the value after one `: ` in the text (picked by `at`) with one of YAML_VALUES. */
function replaceYamlValue(text: Buffer, at: number, variant: number): Buffer {
  const colons: number[] = [];
  for (let i = text.indexOf(': '); i !== -1 && colons.length < 512; i = text.indexOf(': ', i + 1))
    colons.push(i + 2);
  if (colons.length === 0) return text;
  const start = colons[at % colons.length]!;
  const lineEnd = text.indexOf('\n', start);
  const end = lineEnd === -1 ? text.length : lineEnd;
  const value = Buffer.from(YAML_VALUES[variant % YAML_VALUES.length]!, 'utf8');
  return Buffer.concat([text.subarray(0, start), value, text.subarray(end)]);
}

function documentsOf(name: string, text: string): unknown[] {
  const values = name.endsWith('.json')
    ? [JSON.parse(text) as unknown]
    : parseAllDocuments(text).flatMap((doc) => (doc.errors.length > 0 ? [] : [doc.toJS() as unknown]));
  return values.flatMap((v) =>
    typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'List'
      ? ((v as { items?: unknown[] }).items ?? [])
      : [v],
  );
}

function checkRejection(rejection: Rejection): void {
  if (typeof rejection.reason !== 'string' || rejection.reason.trim() === '')
    throw new Error(`a rejection without a reason: ${JSON.stringify(rejection)}`);
  if (typeof rejection.field !== 'string') throw new Error('a rejection whose field is not a string');
  formatRejection(rejection);
}

function isDeepFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  return Object.isFrozen(value) && Object.values(value).every(isDeepFrozen);
}

function checkRecord(record: ConfigRecord): void {
  if (!isDeepFrozen(record)) throw new Error(`a converted ${record.kind} is not frozen throughout`);
  JSON.stringify(record);
  keyString(keyOf(record));
}

function checkContents(contents: ManifestFileContents): void {
  for (const rejection of contents.rejections) checkRejection(rejection);
  for (const [id, record] of contents.records) {
    checkRecord(record);
    if (keyString(keyOf(record)) !== id) throw new Error(`record ${keyString(keyOf(record))} filed as ${id}`);
    if (!contents.claims.has(id)) throw new Error(`record ${id} is not claimed by its file`);
  }
}

function timed<T>(what: string, run: () => T): T {
  const started = performance.now();
  const result = run();
  const ms = performance.now() - started;
  if (ms > MAX_PARSE_MS) throw new Error(`${what} took ${Math.round(ms)} ms (bound ${MAX_PARSE_MS} ms)`);
  return result;
}

class ManifestSession implements FuzzSession<ManifestInput> {
  /** The corpus's objects, converted: the store the consumers run against. */
  readonly #world: readonly ConfigRecord[];
  /** A file's previous contents, so last-good records and claims are exercised too. */
  readonly #previous: ManifestFileContents;
  readonly #previousText: string;

  constructor(world: readonly ConfigRecord[], previousText: string) {
    this.#world = world;
    this.#previousText = previousText;
    this.#previous = readManifestFile('fuzzed.yaml', previousText);
  }

  arbitrary(seeds: readonly ManifestInput[]): fc.Arbitrary<ManifestInput> {
    const files = seeds.filter((s) => s.kind === 'file');
    const objects = [
      ...seeds.flatMap((s) => (s.kind === 'object' ? [s.manifest] : [])),
      ...files.flatMap((f) => {
        try {
          return documentsOf(f.name, f.text);
        } catch {
          return [];
        }
      }),
    ];
    const edited = fc
      .tuple(fc.constantFrom(...objects), fc.array(manifestEdit, { minLength: 1, maxLength: 4 }))
      .map(([manifest, edits]): ManifestInput => ({
        kind: 'object',
        manifest: edits.reduce(applyEdit, manifest),
      }));
    const textOf = (extension: string, tokens: readonly string[], format?: typeof replaceYamlValue) => {
      const texts = files
        .filter((f) => extname(f.name) === extension)
        .map((f) => Buffer.from(f.text, 'utf8'));
      return mutatedBytes(texts, { dictionary: tokens, maxMutations: 6, ...(format && { format }) }).map(
        (bytes): ManifestInput => ({
          kind: 'file',
          name: `fuzzed${extension}`,
          text: bytes.toString('utf8'),
        }),
      );
    };
    return fc.oneof(
      { weight: 5, arbitrary: edited },
      { weight: 4, arbitrary: textOf('.yaml', YAML_TOKENS, replaceYamlValue) },
      { weight: 1, arbitrary: textOf('.json', JSON_TOKENS) },
      {
        weight: 1,
        arbitrary: fc.anything().map((manifest): ManifestInput => ({ kind: 'object', manifest })),
      },
    );
  }

  async check(input: ManifestInput): Promise<void> {
    if (input.kind === 'object') {
      const result = timed('convertManifest', () => convertManifest(input.manifest));
      if (result.outcome === 'rejected') checkRejection(result.rejection);
      else if (result.outcome === 'converted') {
        checkRecord(result.record);
        timed('the consumers', () => exerciseConsumers(this.#world, [result.record]));
      } else if (result.outcome !== 'ignored') throw new Error(`unknown outcome ${JSON.stringify(result)}`);
      return;
    }
    // Both as a new file and as an edit of a file that held valid objects before.
    const fresh = timed('readManifestFile', () => readManifestFile(input.name, input.text));
    checkContents(fresh);
    const edited = timed('readManifestFile', () =>
      readManifestFile('fuzzed.yaml', input.text, this.#previous),
    );
    checkContents(edited);
    const set = new ManifestSet();
    set.setFile('other.yaml', this.#previous);
    set.takeBatch();
    set.setFile(input.name, fresh);
    const batch = set.takeBatch();
    batch.rejections.forEach(checkRejection);
    timed('the consumers', () => exerciseConsumers(this.#world, batch.upserts));
  }

  async healthy(): Promise<void> {
    // Parsing keeps no state between inputs; the seed file must still read as it did.
    const again = readManifestFile('fuzzed.yaml', this.#previousText);
    if (again.records.size !== this.#previous.records.size)
      throw new Error('the seed file reads differently');
  }

  async close(): Promise<void> {}
}

export const manifestTarget: FuzzTarget<ManifestInput> = {
  name: 'manifest',
  async start() {
    const corpus = inputFiles('manifest', 'corpus');
    const world = new Map<string, ConfigRecord>();
    for (const file of corpus)
      for (const [id, record] of readManifestFile(file.name, file.bytes.toString('utf8')).records)
        world.set(id, record);
    const seedFile = corpus.find((f) => f.name === 'bookinfo.yaml') ?? corpus[0]!;
    return new ManifestSession([...world.values()], seedFile.bytes.toString('utf8'));
  },
  decode(file, bytes) {
    if (file.endsWith(OBJECT_SUFFIX))
      return { kind: 'object', manifest: JSON.parse(bytes.toString('utf8')) as unknown };
    return { kind: 'file', name: file.replace(/^open-/, ''), text: bytes.toString('utf8') };
  },
  encode(input) {
    if (input.kind === 'object')
      return { extension: OBJECT_SUFFIX, bytes: Buffer.from(JSON.stringify(input.manifest) ?? 'undefined') };
    return { extension: extname(input.name) || '.yaml', bytes: Buffer.from(input.text, 'utf8') };
  },
};
