// `weft apply` and `weft label` against the active source: the running lab's manifest folder, or any
// folder named with `--config file:DIR`. Everything is checked before anything is written: each object
// through core/convert (the mesh's own rules), then, for a lab, against the lab (its nodes, CIDRs, the
// command). One bad object rejects the whole apply, naming file, document, object and field.
//
// Like `kubectl apply`, re-applying an object keeps what the cluster filled in and the file does not
// say: a Pod's status (its IP) and scheduled node, a Service's ClusterIP. An object already in the
// folder is replaced where it is written; new objects go to `<folder>/<name of the applied file>.yaml`.
import { readFileSync, unlinkSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { convertManifest, formatRejection, type Rejection } from '../../core/convert/index.js';
import { isObject, type JsonObject } from '../../core/convert/fields.js';
import {
  appendObject,
  atomicWrite,
  editObjectInFile,
  manifestKey,
  manifestKeyString,
  readManifestObjects,
  scanManifestFolder,
  type ManifestKey,
  type ManifestLocation,
} from './manifest-folder.js';
import { labProblems } from './pod-spec.js';
import { planLab, type LabPlan } from './plan.js';
import { readLabState } from './state.js';

export interface ActiveSource {
  readonly manifestsDir: string;
  /** The lab whose folder it is; undefined for a plain `file:` folder (no lab checks). */
  readonly plan: LabPlan | undefined;
  readonly description: string;
}

/** `--config file:DIR` when given, else the lab in `labDir`. */
export function activeSource(config: string | undefined, labDir: string): ActiveSource {
  if (config !== undefined) {
    if (!config.startsWith('file:') || config === 'file:')
      throw new Error(
        `--config ${JSON.stringify(config)}: only file:DIR can be written to (kubernetes comes later)`,
      );
    const dir = resolve(config.slice('file:'.length));
    return { manifestsDir: dir, plan: undefined, description: `file:${dir}` };
  }
  const dir = resolve(labDir);
  const state = readLabState(dir);
  if (state === undefined)
    throw new Error(
      `no lab in ${dir}: start one with weft lab up, or name a manifest folder with --config file:DIR`,
    );
  return {
    manifestsDir: state.manifestsDir,
    plan: planLab(state.options),
    description: `lab ${state.id} (${state.manifestsDir})`,
  };
}

export interface ApplyInput {
  /** As shown in messages (the path given, or `-` for stdin). */
  readonly name: string;
  readonly text: string;
}

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  /** Non-empty means nothing was written. */
  readonly rejections: readonly string[];
  readonly warnings: readonly string[];
  readonly changes: readonly {
    readonly object: string;
    readonly action: ApplyAction;
    readonly file: string;
  }[];
}

interface Incoming {
  readonly key: ManifestKey;
  readonly manifest: JsonObject;
  readonly input: ApplyInput;
  readonly origin: { readonly file: string; readonly document: number; readonly item?: number };
}

function podIpOf(manifest: JsonObject): string | undefined {
  if (manifest.kind !== 'Pod' || !isObject(manifest.status)) return undefined;
  return typeof manifest.status.podIP === 'string' ? manifest.status.podIP : undefined;
}

/** Fixed pod IPs that another pod (in the folder or in this apply) already has. */
function ipConflicts(
  existing: ReadonlyMap<string, ManifestLocation>,
  incoming: readonly Incoming[],
): string[] {
  const applied = new Set(incoming.map((i) => manifestKeyString(i.key)));
  const holders = new Map<string, string>();
  for (const [id, location] of existing) {
    const ip = podIpOf(location.manifest);
    if (ip !== undefined && !applied.has(id))
      holders.set(ip, `${location.key.namespace}/${location.key.name}`);
  }
  const problems: string[] = [];
  for (const { key, manifest, origin } of incoming) {
    const ip = podIpOf(manifest);
    if (ip === undefined) continue;
    const holder = holders.get(ip);
    if (holder !== undefined)
      problems.push(
        formatRejection({
          ...key,
          ...origin,
          field: 'status.podIP',
          reason: `${ip} is already used by Pod ${holder}`,
        }),
      );
    else holders.set(ip, `${key.namespace}/${key.name}`);
  }
  return problems;
}

export function applyManifests(source: ActiveSource, inputs: readonly ApplyInput[]): ApplyResult {
  const rejections: string[] = [];
  const warnings: string[] = [];
  const incoming: Incoming[] = [];
  const seen = new Map<string, string>();
  const existing = scanManifestFolder(source.manifestsDir);

  for (const input of inputs) {
    for (const doc of parseInput(input)) {
      const origin = {
        file: input.name,
        document: doc.document,
        ...(doc.item === undefined ? {} : { item: doc.item }),
      };
      if ('error' in doc) {
        rejections.push(
          formatRejection({ kind: '', namespace: '', name: '', field: '', reason: doc.error, ...origin }),
        );
        continue;
      }
      const result = convertManifest(doc.value, origin);
      if (result.outcome === 'rejected') {
        rejections.push(formatRejection(result.rejection));
        continue;
      }
      const key = manifestKey(doc.value);
      if (key === undefined) {
        rejections.push(
          formatRejection({
            kind: '',
            namespace: '',
            name: '',
            field: 'metadata.name',
            reason: 'is required',
            ...origin,
          }),
        );
        continue;
      }
      const id = manifestKeyString(key);
      const described = { kind: key.kind, namespace: key.namespace, name: key.name, ...origin };
      const earlier = seen.get(id);
      if (earlier !== undefined) {
        rejections.push(
          formatRejection({ ...described, field: '', reason: `is defined twice (first in ${earlier})` }),
        );
        continue;
      }
      seen.set(id, `${input.name} doc ${doc.document}`);
      if (result.outcome === 'ignored')
        warnings.push(
          `${formatRejection({ ...described, field: '', reason: result.reason })}; written, but only Pods run in the lab`,
        );
      const manifest = mergeForApply(existing.get(id)?.manifest, withNamespace(doc.value as JsonObject, key));
      if (source.plan !== undefined)
        for (const p of labProblems(source.plan, manifest))
          rejections.push(formatRejection({ ...described, ...p } satisfies Rejection));
      incoming.push({ key, manifest, input, origin });
    }
  }
  if (source.plan !== undefined) rejections.push(...ipConflicts(existing, incoming));
  if (rejections.length > 0) return { rejections, warnings, changes: [] };

  const changes: { object: string; action: ApplyAction; file: string }[] = [];
  for (const { key, manifest, input } of incoming) {
    const object = `${key.kind} ${key.namespace === '' ? '' : `${key.namespace}/`}${key.name}`;
    const current = existing.get(manifestKeyString(key));
    if (current !== undefined) {
      if (canonicalJson(current.manifest) === canonicalJson(manifest)) {
        changes.push({ object, action: 'unchanged', file: current.file });
        continue;
      }
      if (editObjectInFile(current.file, key, { replace: manifest })) {
        changes.push({ object, action: 'configured', file: current.file });
        continue;
      }
    }
    const file = targetFile(source.manifestsDir, input.name);
    appendObject(file, manifest);
    changes.push({ object, action: 'created', file });
  }
  return { rejections, warnings, changes };
}

// ---- deleting ---------------------------------------------------------------------------------------

export interface DeleteChange {
  /** `Pod shop/web`. */
  readonly object: string;
  readonly file: string;
}

/**
 * Removes the objects `keys` from the folder (`kubectl delete`): each one's document, or its entry of a
 * `kind: List`; a file left with no object is removed. Other documents keep their text. Keys that are
 * not in the folder are skipped: the result lists what was deleted.
 */
export function deleteObjects(source: ActiveSource, keys: readonly ManifestKey[]): DeleteChange[] {
  const existing = scanManifestFolder(source.manifestsDir);
  const byFile = new Map<string, ManifestKey[]>();
  for (const key of keys) {
    const location = existing.get(manifestKeyString(key));
    if (location === undefined) continue;
    byFile.set(location.file, [...(byFile.get(location.file) ?? []), location.key]);
  }
  const deleted: DeleteChange[] = [];
  for (const [file, fileKeys] of byFile)
    for (const key of removeFromFile(file, fileKeys))
      deleted.push({
        object: `${key.kind} ${key.namespace === '' ? '' : `${key.namespace}/`}${key.name}`,
        file,
      });
  return deleted;
}

/** Removes `keys` from `file` (re-read now), returning those it held. */
function removeFromFile(file: string, keys: readonly ManifestKey[]): ManifestKey[] {
  const text = readFileSync(file, 'utf8');
  const wanted = new Set(keys.map(manifestKeyString));
  const locations = readManifestObjects(file, text).filter((l) => wanted.has(manifestKeyString(l.key)));
  if (locations.length === 0) return [];
  const whole = new Set(locations.filter((l) => l.item === undefined).map((l) => l.document));
  // Highest index first, so removing an item does not move the ones still to remove.
  const items = locations
    .filter((l) => l.item !== undefined)
    .sort((a, b) => b.document - a.document || b.item! - a.item!);
  if (file.endsWith('.json')) {
    const root = JSON.parse(text) as { items?: unknown[] };
    for (const l of items) root.items?.splice(l.item!, 1);
    if (whole.size > 0) unlinkSync(file);
    else atomicWrite(file, `${JSON.stringify(root, null, 2)}\n`);
    return locations.map((l) => l.key);
  }
  const docs = parseAllDocuments(text);
  const broken = docs.findIndex((d) => d.errors.length > 0);
  if (broken !== -1)
    throw new Error(
      `${file}: document ${broken + 1} has a YAML syntax error; fix it before deleting from this file`,
    );
  for (const l of items) docs[l.document]!.deleteIn(['items', l.item!]);
  const kept = docs.filter((d, i) => !whole.has(i) && d.contents !== null);
  if (kept.length === 0) unlinkSync(file);
  else
    atomicWrite(
      file,
      kept
        .map((d, i) => {
          const part = d.toString();
          return i === 0 || part.startsWith('---') ? part : `---\n${part}`;
        })
        .join(''),
    );
  return locations.map((l) => l.key);
}

type ParsedDoc =
  | { readonly document: number; readonly item: number | undefined; readonly value: unknown }
  | { readonly document: number; readonly item: undefined; readonly error: string };

function parseInput(input: ApplyInput): ParsedDoc[] {
  const docs: ParsedDoc[] = [];
  const push = (value: unknown, document: number): void => {
    if (value === null || value === undefined) return;
    if (isObject(value) && value.kind === 'List' && Array.isArray(value.items))
      value.items.forEach((item: unknown, i) => docs.push({ document, item: i, value: item }));
    else docs.push({ document, item: undefined, value });
  };
  if (input.name.endsWith('.json')) {
    try {
      push(JSON.parse(input.text), 1);
    } catch (err) {
      docs.push({ document: 1, item: undefined, error: `JSON syntax error: ${(err as Error).message}` });
    }
    return docs;
  }
  parseAllDocuments(input.text).forEach((doc, i) => {
    const error = doc.errors[0];
    if (error !== undefined)
      docs.push({
        document: i + 1,
        item: undefined,
        error: `YAML syntax error: ${error.message.split('\n')[0]}`,
      });
    else push(doc.toJS(), i + 1);
  });
  return docs;
}

/** Writes the namespace an object lands in, so the folder says explicitly what kubectl would default. */
function withNamespace(manifest: JsonObject, key: ManifestKey): JsonObject {
  if (key.namespace === '' || !isObject(manifest.metadata) || manifest.metadata.namespace === key.namespace)
    return manifest;
  return { ...manifest, metadata: { ...manifest.metadata, namespace: key.namespace } };
}

/** The incoming manifest, plus what the cluster filled in that it does not state (see the header). */
export function mergeForApply(current: JsonObject | undefined, incoming: JsonObject): JsonObject {
  if (current === undefined) return incoming;
  const merged: Record<string, unknown> = structuredClone(incoming) as Record<string, unknown>;
  const curSpec = isObject(current.spec) ? current.spec : {};
  const spec: Record<string, unknown> = isObject(merged.spec) ? { ...merged.spec } : {};
  if (incoming.kind === 'Pod') {
    const movedNode = typeof spec.nodeName === 'string' && spec.nodeName !== curSpec.nodeName;
    if (spec.nodeName === undefined && typeof curSpec.nodeName === 'string') spec.nodeName = curSpec.nodeName;
    // A pod's IP belongs to its node's CIDR: a pod moved to another node gets a new one.
    if (merged.status === undefined && current.status !== undefined && !movedNode)
      merged.status = current.status;
    merged.spec = spec;
  } else if (incoming.kind === 'Service') {
    if (spec.clusterIP === undefined && spec.clusterIPs === undefined) {
      if (curSpec.clusterIP !== undefined) spec.clusterIP = curSpec.clusterIP;
      if (curSpec.clusterIPs !== undefined) spec.clusterIPs = curSpec.clusterIPs;
    }
    merged.spec = spec;
  } else if (merged.status === undefined && current.status !== undefined) {
    merged.status = current.status;
  }
  return merged;
}

function targetFile(dir: string, inputName: string): string {
  const base = inputName === '-' ? 'applied' : basename(inputName, extname(inputName));
  return join(dir, `${base.replace(/^\.+/, '') || 'applied'}.yaml`);
}

/** JSON with sorted keys: equal data, equal text. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    isObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

// ---- labels -----------------------------------------------------------------------------------------

/** `key=value` sets, `key-` removes. */
export interface LabelChange {
  readonly key: string;
  readonly value: string | null;
}

// Kubernetes' label syntax (apimachinery validation.IsQualifiedName / IsValidLabelValue).
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_LABEL_NAME = 63;
const MAX_LABEL_PREFIX = 253;

/** Parses `key=value` / `key-`; throws naming the bad argument. */
export function parseLabelChange(arg: string): LabelChange {
  const eq = arg.indexOf('=');
  const change: LabelChange =
    eq === -1 && arg.endsWith('-')
      ? { key: arg.slice(0, -1), value: null }
      : { key: arg.slice(0, eq), value: arg.slice(eq + 1) };
  if (eq === -1 && !arg.endsWith('-'))
    throw new Error(`${JSON.stringify(arg)}: expected key=value, or key- to remove`);
  const slash = change.key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : change.key.slice(0, slash);
  const name = change.key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > MAX_LABEL_PREFIX || !LABEL_PREFIX.test(prefix)))
    throw new Error(`label key ${JSON.stringify(change.key)}: the prefix must be a DNS subdomain`);
  if (name.length > MAX_LABEL_NAME || !LABEL_NAME.test(name))
    throw new Error(
      `label key ${JSON.stringify(change.key)}: the name must be 1-63 letters, digits, "-", "_" or ".", starting and ending alphanumeric`,
    );
  if (
    change.value !== null &&
    change.value !== '' &&
    (change.value.length > MAX_LABEL_NAME || !LABEL_NAME.test(change.value))
  )
    throw new Error(
      `label value ${JSON.stringify(change.value)}: must be at most 63 letters, digits, "-", "_" or ".", starting and ending alphanumeric`,
    );
  return change;
}

export interface LabelResult {
  readonly action: 'labeled' | 'unchanged' | 'created';
  readonly file: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** Sets and removes labels of Namespace `name` in the folder, creating its manifest if there is none. */
export function labelNamespace(
  source: ActiveSource,
  name: string,
  changes: readonly LabelChange[],
): LabelResult {
  const key: ManifestKey = { kind: 'Namespace', namespace: '', name };
  const current = scanManifestFolder(source.manifestsDir).get(manifestKeyString(key));
  const metadata =
    current !== undefined && isObject(current.manifest.metadata) ? current.manifest.metadata : {};
  const before: Record<string, unknown> = isObject(metadata.labels) ? { ...metadata.labels } : {};
  const after: Record<string, unknown> = { ...before };
  for (const c of changes) {
    if (c.value === null) delete after[c.key];
    else after[c.key] = c.value;
  }
  const manifest: JsonObject =
    current !== undefined
      ? { ...current.manifest, metadata: { ...metadata, labels: after } }
      : { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: after } };
  const result = convertManifest(manifest, { file: current?.file ?? '(new)' });
  if (result.outcome !== 'converted')
    throw new Error(result.outcome === 'rejected' ? formatRejection(result.rejection) : result.reason);
  const labels = after as Record<string, string>;
  if (current === undefined) {
    const file = join(source.manifestsDir, `namespace-${name}.yaml`);
    appendObject(file, manifest);
    return { action: 'created', file, labels };
  }
  if (canonicalJson(before) === canonicalJson(after))
    return { action: 'unchanged', file: current.file, labels };
  const set = changes.map((c) => [['metadata', 'labels', c.key], c.value ?? undefined] as const);
  if (!editObjectInFile(current.file, key, { set }))
    throw new Error(`${current.file}: Namespace ${name} changed while being edited; try again`);
  return { action: 'labeled', file: current.file, labels };
}
