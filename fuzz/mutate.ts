// Mutations of corpus inputs, as fast-check arbitraries so that a failing mutant shrinks: fewer
// mutations, smaller positions, shorter insertions. The operations are the usual byte-level ones of
// coverage-guided fuzzers (bit flips, interesting bytes, insertion of format tokens, deletion,
// repetition, truncation, splicing from another seed), plus one a target may define for its own format
// (DER length fields for the CSR target).
import fc from 'fast-check';

export type ByteMutation =
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'set'; readonly at: number; readonly byte: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: Uint8Array }
  | { readonly op: 'remove'; readonly at: number; readonly length: number }
  | { readonly op: 'repeat'; readonly at: number; readonly length: number; readonly times: number }
  | { readonly op: 'truncate'; readonly at: number }
  | {
      readonly op: 'splice';
      readonly at: number;
      readonly from: number;
      readonly fromAt: number;
      readonly length: number;
    }
  | { readonly op: 'format'; readonly at: number; readonly variant: number };

/** Bytes that are boundaries in text and binary formats: controls, separators, sign and high bits. */
const INTERESTING_BYTES = [
  0x00, 0x01, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x23, 0x25, 0x2c, 0x2d, 0x2f, 0x30, 0x3a, 0x3b, 0x3d, 0x5c, 0x7b,
  0x7f, 0x80, 0x81, 0xc0, 0xfe, 0xff,
];
/** Positions are drawn up to here and taken modulo the input's length. */
const MAX_POSITION = 0xffff;

export interface MutationOptions {
  /** Tokens of the format worth inserting whole (keywords, delimiters, header names). */
  readonly dictionary?: readonly string[];
  /** Most mutations stacked on one seed (default 4). */
  readonly maxMutations?: number;
  /** Mutants are cut to this size (default 64 KiB), so repetition cannot grow without bound. */
  readonly maxBytes?: number;
  /** The target's own mutation at a position; `variant` picks which of its kinds. */
  readonly format?: (bytes: Buffer, at: number, variant: number) => Buffer;
}

function mutationArbitrary(seedCount: number, options: MutationOptions): fc.Arbitrary<ByteMutation> {
  const at = fc.nat(MAX_POSITION);
  const dictionary = (options.dictionary ?? []).map((token) => new Uint8Array(Buffer.from(token, 'latin1')));
  const insertions =
    dictionary.length > 0
      ? fc.oneof(fc.constantFrom(...dictionary), fc.uint8Array({ minLength: 1, maxLength: 16 }))
      : fc.uint8Array({ minLength: 1, maxLength: 16 });
  const kinds: fc.Arbitrary<ByteMutation>[] = [
    fc.record({ op: fc.constant('flip' as const), at, bit: fc.nat(7) }),
    fc.record({
      op: fc.constant('set' as const),
      at,
      byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.nat(255)),
    }),
    fc.record({ op: fc.constant('insert' as const), at, bytes: insertions }),
    fc.record({ op: fc.constant('remove' as const), at, length: fc.integer({ min: 1, max: 64 }) }),
    fc.record({
      op: fc.constant('repeat' as const),
      at,
      length: fc.integer({ min: 1, max: 32 }),
      times: fc.integer({ min: 1, max: 512 }),
    }),
    fc.record({ op: fc.constant('truncate' as const), at }),
    fc.record({
      op: fc.constant('splice' as const),
      at,
      from: fc.nat(Math.max(0, seedCount - 1)),
      fromAt: at,
      length: fc.integer({ min: 1, max: 256 }),
    }),
  ];
  if (options.format) kinds.push(fc.record({ op: fc.constant('format' as const), at, variant: fc.nat(255) }));
  return fc.oneof(...kinds);
}

function applyMutation(
  input: Buffer,
  m: ByteMutation,
  seeds: readonly Buffer[],
  options: MutationOptions,
): Buffer {
  const pos = (n: number, length = input.length) => (length === 0 ? 0 : n % (length + 1));
  const at = pos(m.at);
  switch (m.op) {
    case 'flip': {
      if (input.length === 0) return input;
      const out = Buffer.from(input);
      out[m.at % input.length]! ^= 1 << m.bit;
      return out;
    }
    case 'set': {
      if (input.length === 0) return Buffer.from([m.byte]);
      const out = Buffer.from(input);
      out[m.at % input.length] = m.byte;
      return out;
    }
    case 'insert':
      return Buffer.concat([input.subarray(0, at), m.bytes, input.subarray(at)]);
    case 'remove':
      return Buffer.concat([input.subarray(0, at), input.subarray(at + m.length)]);
    case 'repeat': {
      const piece = input.subarray(at, at + m.length);
      return Buffer.concat([
        input.subarray(0, at),
        ...Array<Buffer>(m.times).fill(piece),
        input.subarray(at),
      ]);
    }
    case 'truncate':
      return input.subarray(0, at);
    case 'splice': {
      const other = seeds[m.from] ?? input;
      const from = pos(m.fromAt, other.length);
      return Buffer.concat([
        input.subarray(0, at),
        other.subarray(from, from + m.length),
        input.subarray(at),
      ]);
    }
    case 'format':
      return options.format ? options.format(input, at, m.variant) : input;
  }
}

/** Applies mutations in order; the result is cut to `maxBytes`. Exported for replaying a mutant by hand. */
export function applyMutations(
  seed: Buffer,
  mutations: readonly ByteMutation[],
  seeds: readonly Buffer[],
  options: MutationOptions = {},
): Buffer {
  let out = seed;
  for (const m of mutations) out = applyMutation(out, m, seeds, options);
  const maxBytes = options.maxBytes ?? 64 * 1024;
  return out.length > maxBytes ? out.subarray(0, maxBytes) : out;
}

/** One seed with one to `maxMutations` mutations stacked on it. */
export function mutatedBytes(seeds: readonly Buffer[], options: MutationOptions = {}): fc.Arbitrary<Buffer> {
  if (seeds.length === 0) throw new Error('mutatedBytes needs at least one seed');
  return fc
    .tuple(
      fc.nat(seeds.length - 1),
      fc.array(mutationArbitrary(seeds.length, options), {
        minLength: 1,
        maxLength: options.maxMutations ?? 4,
      }),
    )
    .map(([index, mutations]) => applyMutations(seeds[index]!, mutations, seeds, options));
}
