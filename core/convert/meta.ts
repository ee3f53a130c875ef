// metadata: identity, labels, and the creation time that orders precedence ties.
import type { Labels } from '../model/index.js';
import { fail, isObject, optionalObject, shown, stringMap, type JsonObject } from './fields.js';
import { nameProblem, type NameFormat } from './names.js';

/** Namespaced objects without metadata.namespace live in "default", as kubectl would put them. */
export const DEFAULT_NAMESPACE = 'default';

export interface ObjectMeta {
  readonly name: string;
  /** "" for cluster-scoped kinds. */
  readonly namespace: string;
  readonly labels: Labels;
  readonly annotations: Readonly<Record<string, string>>;
  readonly uid: string | undefined;
  readonly createdAtMs: number | undefined;
}

/** The identity of a manifest as far as it can be read, for naming it in a rejection even when invalid. */
export function looseIdentity(
  manifest: JsonObject,
  namespaced: boolean,
): { namespace: string; name: string } {
  const metadata = manifest.metadata;
  const raw = (key: string): string | undefined => {
    if (typeof metadata !== 'object' || metadata === null) return undefined;
    const value = (metadata as JsonObject)[key];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  return { namespace: namespaced ? (raw('namespace') ?? DEFAULT_NAMESPACE) : '', name: raw('name') ?? '' };
}

/**
 * The identity of a manifest only if it is valid (the name and namespace `readMeta` would accept), so
 * that it surely names the object; undefined otherwise.
 */
export function strictIdentity(
  manifest: JsonObject,
  namespaced: boolean,
  nameFormat: NameFormat,
): { namespace: string; name: string } | undefined {
  const metadata = manifest.metadata;
  if (!isObject(metadata)) return undefined;
  const { name, namespace } = metadata;
  if (typeof name !== 'string' || nameProblem(name, nameFormat) !== undefined) return undefined;
  if (!namespaced) return { namespace: '', name };
  if (namespace === undefined || namespace === null || namespace === '')
    return { namespace: DEFAULT_NAMESPACE, name };
  if (typeof namespace !== 'string' || nameProblem(namespace, 'dns1123-label') !== undefined)
    return undefined;
  return { namespace, name };
}

export function readMeta(manifest: JsonObject, namespaced: boolean, nameFormat: NameFormat): ObjectMeta {
  const metadata = optionalObject(manifest.metadata, 'metadata');
  if (metadata === undefined) fail('metadata', 'is required');
  const name = metadata.name;
  if (typeof name !== 'string' || name === '') fail('metadata.name', `is required, got ${shown(name)}`);
  const nameWrong = nameProblem(name, nameFormat);
  if (nameWrong !== undefined) fail('metadata.name', `${nameWrong}, got ${shown(name)}`);
  return {
    name,
    namespace: namespaced ? readNamespace(metadata.namespace) : '',
    labels: stringMap(metadata.labels, 'metadata.labels'),
    annotations: stringMap(metadata.annotations, 'metadata.annotations'),
    uid: typeof metadata.uid === 'string' && metadata.uid !== '' ? metadata.uid : undefined,
    createdAtMs: readTimestamp(metadata.creationTimestamp),
  };
}

function readNamespace(value: unknown): string {
  if (value === undefined || value === null || value === '') return DEFAULT_NAMESPACE;
  if (typeof value !== 'string') fail('metadata.namespace', `must be a string, got ${shown(value)}`);
  const wrong = nameProblem(value, 'dns1123-label');
  if (wrong !== undefined) fail('metadata.namespace', `${wrong}, got ${shown(value)}`);
  return value;
}

function readTimestamp(value: unknown): number | undefined {
  // YAML may hand us a Date for an unquoted timestamp, or the RFC 3339 string.
  if (value instanceof Date) return value.getTime();
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) fail('metadata.creationTimestamp', `must be an RFC 3339 time, got ${shown(value)}`);
  return ms;
}
