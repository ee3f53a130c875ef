// v1 Namespace -> Namespace record.
import type { Namespace } from '../model/index.js';
import type { JsonObject } from './fields.js';
import type { ObjectMeta } from './meta.js';

export function convertNamespace(_manifest: JsonObject, meta: ObjectMeta): Namespace {
  return { kind: 'Namespace', name: meta.name, labels: meta.labels };
}
