// Reading untyped manifest data field by field. Every reader takes the field's path so a failure
// names it; a failure throws FieldError, which convertManifest turns into a Rejection. FieldError
// never escapes core/convert/.

export type JsonObject = Readonly<Record<string, unknown>>;

export class FieldError extends Error {
  readonly field: string;
  readonly reason: string;

  constructor(field: string, reason: string) {
    super(`${field} ${reason}`);
    this.name = 'FieldError';
    this.field = field;
    this.reason = reason;
  }
}

export function fail(field: string, reason: string): never {
  throw new FieldError(field, reason);
}

const MAX_SHOWN_CHARS = 60;

/** A short rendering of a bad value for "got …" in messages. */
export function shown(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'nothing' : (JSON.stringify(value) ?? String(value));
  } catch {
    // A YAML alias can make a value contain itself (`a: &x [*x]`): say so rather than throw.
    text = 'a value that contains itself (a recursive YAML alias)';
  }
  return text.length > MAX_SHOWN_CHARS ? `${text.slice(0, MAX_SHOWN_CHARS)}…` : text;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** YAML `key:` with no value parses as null; Kubernetes treats it as absent, and so do we. */
function absent(value: unknown): value is undefined | null {
  return value === undefined || value === null;
}

export function requireObject(value: unknown, field: string): JsonObject {
  if (!isObject(value)) fail(field, `must be an object, got ${shown(value)}`);
  return value;
}

export function optionalObject(value: unknown, field: string): JsonObject | undefined {
  return absent(value) ? undefined : requireObject(value, field);
}

export function requireString(value: unknown, field: string): string {
  if (absent(value)) fail(field, 'is required');
  if (typeof value !== 'string' || value === '')
    fail(field, `must be a non-empty string, got ${shown(value)}`);
  return value;
}

export function optionalString(value: unknown, field: string): string | undefined {
  return absent(value) ? undefined : requireString(value, field);
}

export function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (absent(value)) return undefined;
  if (typeof value !== 'boolean') fail(field, `must be true or false, got ${shown(value)}`);
  return value;
}

export function optionalList(
  value: unknown,
  field: string,
  maxItems?: number,
): readonly unknown[] | undefined {
  if (absent(value)) return undefined;
  if (!Array.isArray(value)) fail(field, `must be a list, got ${shown(value)}`);
  if (maxItems !== undefined && value.length > maxItems) {
    fail(field, `must have at most ${maxItems} entries, got ${value.length}`);
  }
  return value;
}

/** A list of non-empty strings; absent reads as []. */
export function stringList(value: unknown, field: string, maxItems?: number): readonly string[] {
  const list = optionalList(value, field, maxItems) ?? [];
  return list.map((item, i) => requireString(item, `${field}[${i}]`));
}

export function optionalInteger(
  value: unknown,
  field: string,
  range: { readonly min: number; readonly max: number; readonly what?: string },
): number | undefined {
  if (absent(value)) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    fail(field, `must be ${range.what ?? 'an integer'} ${range.min}-${range.max}, got ${shown(value)}`);
  }
  return value;
}

/** A TCP/UDP port: 1-65535. */
export function optionalPort(value: unknown, field: string): number | undefined {
  return optionalInteger(value, field, { min: 1, max: 65535, what: 'a port number' });
}

export function requirePort(value: unknown, field: string): number {
  const port = optionalPort(value, field);
  if (port === undefined) fail(field, 'is required');
  return port;
}

export function optionalEnum<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
): T | undefined {
  if (absent(value)) return undefined;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    fail(field, `must be one of ${allowed.join(', ')}, got ${shown(value)}`);
  }
  return value as T;
}

/** A map of string to string (labels, annotations, selectors); absent reads as {}. */
export function stringMap(value: unknown, field: string): Readonly<Record<string, string>> {
  const object = optionalObject(value, field);
  const result: Record<string, string> = {};
  if (object === undefined) return result;
  for (const [key, item] of Object.entries(object)) {
    if (typeof item !== 'string')
      fail(`${field}[${JSON.stringify(key)}]`, `must be a string, got ${shown(item)}`);
    result[key] = item;
  }
  return result;
}

/**
 * Rejects fields this version does not know. Used where silently ignoring a misspelt field would widen
 * what a security policy allows (an ALLOW with `principal:` instead of `principals:` allows everyone).
 */
export function rejectUnknownFields(object: JsonObject, field: string, known: readonly string[]): void {
  for (const key of Object.keys(object)) {
    if (!known.includes(key))
      fail(`${field}.${key}`, `is not a supported field (expected one of ${known.join(', ')})`);
  }
}
