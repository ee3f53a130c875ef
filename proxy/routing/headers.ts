// Header edits: what RequestHeaderModifier, ResponseHeaderModifier and CORS decide, as data the HTTP
// layer applies in order (gateway-api.md §6.1, §6.2). Names are lower-case, so every comparison is
// case-insensitive, as HTTP header names are.
import type { HeaderModifier } from '../../core/model/index.js';
import type { HeaderFieldValue } from './request.js';

export type HeaderEdit =
  /** Replace every value of the header, or add it. */
  | { readonly op: 'set'; readonly name: string; readonly value: string }
  /** Append to the existing value (joined with ","), or add it. */
  | { readonly op: 'add'; readonly name: string; readonly value: string }
  | { readonly op: 'remove'; readonly name: string };

/** Set-Cookie is the one header whose field lines must never be joined (RFC 9110 §5.3). */
const SET_COOKIE = 'set-cookie';

/**
 * The edits of one modifier, set before add before remove. The spec allows a name in only one of the
 * three lists of a filter (the converter enforces it), so this order never changes the outcome.
 */
export function compileHeaderModifier(modifier: HeaderModifier): readonly HeaderEdit[] {
  const edits: HeaderEdit[] = [];
  for (const { name, value } of modifier.set) edits.push({ op: 'set', name: name.toLowerCase(), value });
  for (const { name, value } of modifier.add) edits.push({ op: 'add', name: name.toLowerCase(), value });
  for (const name of modifier.remove) edits.push({ op: 'remove', name: name.toLowerCase() });
  return Object.freeze(edits);
}

/**
 * Applies edits in order to a header record (lower-case names) and returns the new record; the input is
 * not changed. `add` joins with "," as conformance expects (`existing,added`), except Set-Cookie, which
 * gains a separate field line.
 */
export function applyHeaderEdits(
  headers: Readonly<Record<string, HeaderFieldValue | undefined>>,
  edits: readonly HeaderEdit[],
): Record<string, HeaderFieldValue> {
  const result: Record<string, HeaderFieldValue> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) result[name] = value;
  for (const edit of edits) {
    switch (edit.op) {
      case 'set':
        result[edit.name] = edit.value;
        break;
      case 'add': {
        const existing = result[edit.name];
        if (existing === undefined) result[edit.name] = edit.value;
        else if (edit.name === SET_COOKIE) result[edit.name] = [...asList(existing), edit.value];
        else result[edit.name] = `${asList(existing).join(',')},${edit.value}`;
        break;
      }
      case 'remove':
        delete result[edit.name];
        break;
    }
  }
  return result;
}

function asList(value: HeaderFieldValue): readonly string[] {
  return typeof value === 'string' ? [value] : value;
}
