// JSON for inputs that hold bytes: a Uint8Array is written as `{ "$base64": "…" }` and read back as one,
// so structured inputs (frame lists) can be committed as readable files.
const BYTES_KEY = '$base64';

export function stringifyWithBytes(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => (v instanceof Uint8Array ? { [BYTES_KEY]: Buffer.from(v).toString('base64') } : v),
    2,
  );
}

export function parseWithBytes(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>)[BYTES_KEY] === 'string')
      return new Uint8Array(Buffer.from((v as Record<string, string>)[BYTES_KEY]!, 'base64'));
    return v;
  });
}
