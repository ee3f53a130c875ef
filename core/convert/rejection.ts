// A Rejection is an object (or a document) that did not become a record, and why. Expected failure is
// a value here: sources collect rejections, the store keeps them for status and the CLI.
import { describeKey, keyString, type ConfigKind } from '../model/index.js';

export interface Rejection {
  /** The manifest's kind as written; "" when the document could not be read far enough to tell. */
  readonly kind: string;
  /** "" for cluster-scoped kinds and unidentified documents. */
  readonly namespace: string;
  /** "" when the document has no usable metadata.name. */
  readonly name: string;
  /** The offending field as a path (`spec.rules[0].to[0].operation.ports[1]`); "" when no one field is at fault. */
  readonly field: string;
  /** Reads after the field: `must be a port number 1-65535, got "http"`. */
  readonly reason: string;
  /** The file the object came from, as the source names it (relative to its folder). */
  readonly file?: string;
  /** 1-based position of the YAML document in the file. */
  readonly document?: number;
  /** 0-based index in the `items` of a `kind: List` document. */
  readonly item?: number;
}

/** `manifests/bad.yaml doc 2: AuthorizationPolicy default/deny-all: spec.rules[0]… must be …`. */
export function formatRejection(rejection: Rejection): string {
  const parts: string[] = [];
  const location = formatLocation(rejection);
  if (location !== '') parts.push(location);
  if (rejection.name !== '') parts.push(describeKey(rejection));
  else if (rejection.kind !== '') parts.push(rejection.kind);
  const problem = rejection.field === '' ? rejection.reason : `${rejection.field} ${rejection.reason}`;
  return parts.length === 0 ? problem : `${parts.join(': ')}: ${problem}`;
}

function formatLocation(rejection: Rejection): string {
  let location = rejection.file ?? '';
  if (rejection.document !== undefined) location += `${location === '' ? '' : ' '}doc ${rejection.document}`;
  if (rejection.item !== undefined) location += `${location === '' ? '' : ' '}items[${rejection.item}]`;
  return location;
}

/**
 * Identifies a rejection so a later one for the same thing replaces it, and so it can be cleared.
 * It includes the file: the same object rejected from two files is two rejections. An unidentified
 * document is known only by its position in its file.
 */
export function rejectionKey(rejection: Rejection): string {
  const origin = rejection.file === undefined ? '' : `${rejection.file}|`;
  if (rejection.name !== '') {
    return (
      origin +
      keyString({ kind: rejection.kind as ConfigKind, namespace: rejection.namespace, name: rejection.name })
    );
  }
  return `${origin}doc ${rejection.document ?? 0}${rejection.item === undefined ? '' : ` items[${rejection.item}]`}`;
}
