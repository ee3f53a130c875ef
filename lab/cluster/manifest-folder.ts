// The manifest folder as files: where each object is written, and edits that keep everything else in
// its file (other documents, comments, formatting) as it was. The mesh reads the same folder through
// core/sources/file.ts; this side only finds and writes. Used by the lab controller (writing back pod
// IPs, ClusterIPs and node names, as a real cluster's status would change) and by `weft apply` and
// `weft label`.
//
// Every write replaces the file atomically (a dot-named temp file, which the file source ignores, then
// rename), so a watcher never reads half a file.
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { Document, parseAllDocuments, stringify } from 'yaml';
import { isObject, type JsonObject } from '../../core/convert/fields.js';

const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];
/** As the file source: real trees are shallow; a deeper one is cut off rather than walked without end. */
const MAX_DEPTH = 16;
/** Kinds without a namespace, as Kubernetes defines them (only their keys matter here). */
const CLUSTER_SCOPED_KINDS = new Set([
  'Namespace',
  'Node',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'GatewayClass',
  'PersistentVolume',
  'StorageClass',
]);

/** Who an object is, as far as this side cares: kind (without group), namespace ("" if cluster-scoped), name. */
export interface ManifestKey {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

/** Where an object is written, and what it says now. */
export interface ManifestLocation {
  readonly key: ManifestKey;
  readonly file: string;
  /** 0-based index of the document in its file. */
  readonly document: number;
  /** 0-based index in the `items` of a `kind: List` document. */
  readonly item: number | undefined;
  readonly manifest: JsonObject;
}

export type FieldPath = readonly (string | number)[];

export function manifestKeyString(key: ManifestKey): string {
  return key.namespace === '' ? `${key.kind}/${key.name}` : `${key.kind}/${key.namespace}/${key.name}`;
}

/** The key of a manifest, or undefined when it has no usable kind and name. */
export function manifestKey(manifest: unknown): ManifestKey | undefined {
  if (!isObject(manifest) || typeof manifest.kind !== 'string' || !isObject(manifest.metadata))
    return undefined;
  const { name, namespace } = manifest.metadata;
  if (typeof name !== 'string' || name === '') return undefined;
  if (CLUSTER_SCOPED_KINDS.has(manifest.kind)) return { kind: manifest.kind, namespace: '', name };
  return {
    kind: manifest.kind,
    namespace: typeof namespace === 'string' && namespace !== '' ? namespace : 'default',
    name,
  };
}

/** The manifest files under `dir`, sorted, as the file source finds them (dot-names skipped). */
export function listManifestFiles(dir: string): string[] {
  const files: string[] = [];
  const visit = (d: string, depth: number): void => {
    let entries: string[];
    try {
      entries = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue;
      const path = join(d, entry);
      const info = statSync(path, { throwIfNoEntry: false });
      if (info?.isDirectory()) {
        if (depth < MAX_DEPTH) visit(path, depth + 1);
      } else if (info?.isFile() && MANIFEST_EXTENSIONS.includes(extname(entry))) {
        files.push(path);
      }
    }
  };
  visit(dir, 0);
  return files;
}

/** The objects of one file's text with their positions; unreadable documents are skipped. */
export function readManifestObjects(file: string, text: string): ManifestLocation[] {
  const found: ManifestLocation[] = [];
  const add = (value: unknown, document: number, item: number | undefined): void => {
    const key = manifestKey(value);
    if (key !== undefined) found.push({ key, file, document, item, manifest: value as JsonObject });
  };
  parseDocuments(file, text).forEach((value, document) => {
    if (isObject(value) && value.kind === 'List' && Array.isArray(value.items))
      value.items.forEach((item: unknown, i) => add(item, document, i));
    else add(value, document, undefined);
  });
  return found;
}

function parseDocuments(file: string, text: string): unknown[] {
  if (file.endsWith('.json')) {
    if (text.trim() === '') return [];
    try {
      return [JSON.parse(text) as unknown];
    } catch {
      return [];
    }
  }
  return parseAllDocuments(text).map((doc) =>
    doc.errors.length === 0 ? (doc.toJS() as unknown) : undefined,
  );
}

/**
 * Every object in the folder by `manifestKeyString`. When two files define one object the first by path
 * is returned, which is also the file source's choice when neither was loaded before.
 */
export function scanManifestFolder(dir: string): Map<string, ManifestLocation> {
  const objects = new Map<string, ManifestLocation>();
  for (const file of listManifestFiles(dir)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const location of readManifestObjects(file, text)) {
      const id = manifestKeyString(location.key);
      if (!objects.has(id)) objects.set(id, location);
    }
  }
  return objects;
}

/** A change to one object: set (or, with `undefined`, delete) fields, or replace it whole. */
export type ObjectEdit =
  { readonly set: readonly (readonly [FieldPath, unknown])[] } | { readonly replace: JsonObject };

/**
 * Applies `edit` to the object `key` in `file`, keeping the rest of the file. Re-reads the file first
 * and returns false when the object is no longer there (the caller rescans and tries again).
 */
export function editObjectInFile(file: string, key: ManifestKey, edit: ObjectEdit): boolean {
  const text = readFileSync(file, 'utf8');
  const location = readManifestObjects(file, text).find(
    (l) => manifestKeyString(l.key) === manifestKeyString(key),
  );
  if (location === undefined) return false;
  const prefix: FieldPath = location.item === undefined ? [] : ['items', location.item];
  if (file.endsWith('.json')) {
    let root = JSON.parse(text) as unknown;
    if ('replace' in edit) {
      if (location.item === undefined) root = structuredClone(edit.replace);
      else setPath(root, prefix, structuredClone(edit.replace));
    } else {
      const target = navigate(root, prefix);
      for (const [path, value] of edit.set) setPath(target, path, value);
    }
    atomicWrite(file, `${JSON.stringify(root, null, 2)}\n`);
    return true;
  }
  const docs = parseAllDocuments(text);
  const doc = docs[location.document];
  if (doc === undefined || !('setIn' in doc)) return false;
  if ('replace' in edit) {
    if (location.item === undefined) (doc as Document).contents = doc.createNode(edit.replace);
    else doc.setIn(prefix, doc.createNode(edit.replace));
  } else {
    for (const [path, value] of edit.set) {
      if (value === undefined) doc.deleteIn([...prefix, ...path]);
      else doc.setIn([...prefix, ...path], value);
    }
  }
  atomicWrite(file, joinDocuments(docs.map((d) => d.toString())));
  return true;
}

/** Appends `manifest` as a new document of `file` (created if missing; JSON files hold one object). */
export function appendObject(file: string, manifest: JsonObject): void {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (file.endsWith('.json')) {
    if (text.trim() !== '')
      throw new Error(`${file}: a JSON manifest file holds one object; cannot add another`);
    atomicWrite(file, `${JSON.stringify(manifest, null, 2)}\n`);
    return;
  }
  const body = new Document(manifest).toString();
  const prefix = text.trim() === '' ? '' : `${text.endsWith('\n') ? text : `${text}\n`}---\n`;
  atomicWrite(file, prefix + body);
}

export function atomicWrite(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Documents after the first need their `---`; the yaml library writes it only where the source had it. */
function joinDocuments(parts: readonly string[]): string {
  return parts
    .map((part, i) => (i === 0 || part.startsWith('---') ? part : `---\n${part}`))
    .map((part) => (part.endsWith('\n') ? part : `${part}\n`))
    .join('');
}

function navigate(root: unknown, path: FieldPath): unknown {
  let node = root;
  for (const step of path) node = (node as Record<string | number, unknown>)[step];
  return node;
}

/** Sets (or deletes, for `undefined`) a field of plain JSON data, creating objects on the way. */
function setPath(root: unknown, path: FieldPath, value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) {
    const next = node[step];
    if (typeof next !== 'object' || next === null) node[step] = {};
    node = node[step] as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
}

/** A YAML rendering of one manifest, for new files and messages. */
export function manifestToYaml(manifest: JsonObject): string {
  return stringify(manifest);
}
