// Target `csr`: the CA's CSR parser and checks (ca/csr.ts checkWorkloadCsr, which the gRPC
// CreateCertificate handler calls on every request). Inputs are generated requests whose right answer
// follows from the CA's rules (csr-builder.ts), and corpus requests mutated as DER (bit flips,
// truncation, splicing, corrupted length fields) and as PEM text.
//
// The property: a WeftError ERR_CSR_INVALID or ERR_CSR_IDENTITY with a message, or the request's key
// back; never another exception, never a hang. A generated request gets exactly the answers its spec
// allows. A mutant may be accepted only when it still carries a corpus request the CA accepts (same
// key): a mutation that changes what was signed must not verify.
import fc from 'fast-check';
import { checkWorkloadCsr } from '../../ca/csr.js';
import { WeftError } from '../../core/errors.js';
import { x509 } from '../../core/x509.js';
import type { FuzzSession, FuzzTarget } from '../fuzz-target.js';
import { inputFiles } from '../input-files.js';
import { mutatedBytes } from '../mutate.js';
import {
  buildCsr,
  csrSpecArbitrary,
  expectedOutcomes,
  FUZZ_SPIFFE_ID,
  makeKeyPool,
  type CsrOutcome,
} from './csr-builder.js';

export interface CsrInput {
  readonly pem: string;
  /** The answers allowed; undefined for a mutant, which the mutant rule judges. */
  readonly expected?: readonly CsrOutcome[] | undefined;
}

/** Corpus file name prefixes that state the answer: `accept-p256.pem`, `identity-dns-san.pem`. */
const EXPECTATION_BY_PREFIX: Readonly<Record<string, CsrOutcome>> = {
  'accept-': 'accept',
  'invalid-': 'ERR_CSR_INVALID',
  'identity-': 'ERR_CSR_IDENTITY',
};

const PEM_TOKENS = [
  '-----BEGIN CERTIFICATE REQUEST-----',
  '-----END CERTIFICATE REQUEST-----',
  '-----BEGIN NEW CERTIFICATE REQUEST-----',
  '-----BEGIN CERTIFICATE-----',
  '-----',
  'NEW ',
  '\n',
  '\r\n',
  '=',
  '==',
  ' ',
  '\t',
  'MII',
  'AAAA',
  '\u0000',
];

function spkiHex(pem: string): string | undefined {
  try {
    return Buffer.from(new x509.Pkcs10CertificateRequest(pem).publicKey.rawData).toString('hex');
  } catch {
    return undefined;
  }
}

/** Offsets of the DER length octets in `der`, walking into constructed values and OCTET STRINGs. */
export function derLengthOffsets(der: Buffer): number[] {
  const offsets: number[] = [];
  const walk = (start: number, end: number, depth: number): void => {
    let i = start;
    while (i + 1 < end && depth < 12 && offsets.length < 256) {
      const tag = der[i]!;
      const first = der[i + 1]!;
      const lengthBytes = first < 0x80 ? 0 : first & 0x7f;
      if (lengthBytes > 3 || i + 2 + lengthBytes > end) return;
      let length = first < 0x80 ? first : 0;
      for (let k = 0; k < lengthBytes; k++) length = length * 256 + der[i + 2 + k]!;
      const contentStart = i + 2 + lengthBytes;
      if (contentStart + length > end) return;
      offsets.push(i + 1);
      if (tag & 0x20 || tag === 0x04) walk(contentStart, contentStart + length, depth + 1);
      i = contentStart + length;
    }
  };
  walk(0, der.length, 0);
  return offsets;
}

/** Replaces one length field (picked by `at`) with a wrong, non-minimal or impossible encoding. */
export function corruptDerLength(der: Buffer, at: number, variant: number): Buffer {
  const offsets = derLengthOffsets(der);
  if (offsets.length === 0) return der;
  const o = offsets[at % offsets.length]!;
  const first = der[o]!;
  const size = first < 0x80 ? 1 : 1 + (first & 0x7f);
  let value = 0;
  if (first < 0x80) value = first;
  else for (let k = 1; k < size; k++) value = value * 256 + der[o + k]!;
  const encodings = [
    [0x00],
    [Math.min(0x7f, value + 1)],
    [Math.max(0, value - 1) & 0x7f],
    [0x80], // indefinite length: BER, not DER
    [0x81, value & 0xff], // non-minimal when value < 128
    [0x82, (value >> 8) & 0xff, value & 0xff],
    [0x84, 0xff, 0xff, 0xff, 0xff],
    [0x89, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0xff],
  ];
  const replacement = Buffer.from(encodings[variant % encodings.length]!);
  return Buffer.concat([der.subarray(0, o), replacement, der.subarray(o + size)]);
}

class CsrSession implements FuzzSession<CsrInput> {
  readonly #keys = makeKeyPool();
  /** Keys of the corpus requests the CA accepts: the only keys a mutant may come back with. */
  readonly #acceptedKeys: ReadonlySet<string>;

  constructor(acceptedKeys: ReadonlySet<string>) {
    this.#acceptedKeys = acceptedKeys;
  }

  arbitrary(seeds: readonly CsrInput[]): fc.Arbitrary<CsrInput> {
    const keys = this.#keys;
    const generated = csrSpecArbitrary(keys.length).map((spec): CsrInput => ({
      pem: buildCsr(spec, keys),
      expected: [...expectedOutcomes(spec, keys)],
    }));
    const ders = seeds.flatMap((s) => {
      try {
        return [Buffer.from(x509.PemConverter.decodeFirst(s.pem))];
      } catch {
        return [];
      }
    });
    const derMutants = mutatedBytes(ders, { format: corruptDerLength, maxBytes: 8 * 1024 }).map(
      (der): CsrInput => ({
        pem: x509.PemConverter.encode(new Uint8Array(der).buffer, 'CERTIFICATE REQUEST'),
      }),
    );
    const pemMutants = mutatedBytes(
      seeds.map((s) => Buffer.from(s.pem, 'utf8')),
      { dictionary: PEM_TOKENS, maxBytes: 20 * 1024 },
    ).map((bytes): CsrInput => ({ pem: bytes.toString('utf8') }));
    const armouredNoise = fc
      .tuple(
        fc.base64String({ maxLength: 600 }),
        fc.constantFrom('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'),
      )
      .map(([body, label]): CsrInput => ({
        pem: `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`,
      }));
    return fc.oneof(
      { weight: 4, arbitrary: generated },
      { weight: 3, arbitrary: derMutants },
      { weight: 2, arbitrary: pemMutants },
      { weight: 1, arbitrary: armouredNoise },
      {
        weight: 1,
        arbitrary: fc.string({ unit: 'binary', maxLength: 300 }).map((pem): CsrInput => ({ pem })),
      },
    );
  }

  async check(input: CsrInput): Promise<void> {
    let outcome: CsrOutcome;
    let key: string | undefined;
    try {
      const publicKey = await checkWorkloadCsr(input.pem, FUZZ_SPIFFE_ID);
      outcome = 'accept';
      key = Buffer.from(publicKey.rawData).toString('hex');
    } catch (err) {
      if (!(err instanceof WeftError) || (err.code !== 'ERR_CSR_INVALID' && err.code !== 'ERR_CSR_IDENTITY'))
        throw new Error(`checkWorkloadCsr threw something other than a CSR refusal: ${describe(err)}`, {
          cause: err,
        });
      if (err.message.trim() === '') throw new Error(`${err.code} without a reason`, { cause: err });
      outcome = err.code;
    }
    if (input.expected !== undefined) {
      if (!input.expected.includes(outcome))
        throw new Error(`answered ${outcome}; the request's spec allows only ${input.expected.join(' or ')}`);
      return;
    }
    if (outcome === 'accept' && !this.#acceptedKeys.has(key!))
      throw new Error('accepted a mutated request whose key is not that of any accepted corpus request');
  }

  async healthy(): Promise<void> {
    // Nothing is running between inputs; a valid request must still be accepted.
    await checkWorkloadCsr(buildCsr(VALID_SPEC, this.#keys), FUZZ_SPIFFE_ID);
  }

  async close(): Promise<void> {}
}

const VALID_SPEC = {
  key: 0,
  subject: [],
  requests: [
    [[{ kind: 'san' as const, names: [{ form: 'uri' as const, value: FUZZ_SPIFFE_ID }], critical: true }]],
  ],
  challengePassword: false,
  hash: 'sha256' as const,
  signature: 'valid' as const,
};

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export const csrTarget: FuzzTarget<CsrInput> = {
  name: 'csr',
  async start() {
    const accepted = new Set<string>();
    for (const file of inputFiles('csr', 'corpus')) {
      const input = csrTarget.decode(file.name, file.bytes);
      const key = input.expected?.[0] === 'accept' ? spkiHex(input.pem) : undefined;
      if (key !== undefined) accepted.add(key);
    }
    return new CsrSession(accepted);
  },
  decode(file, bytes) {
    const prefix = Object.keys(EXPECTATION_BY_PREFIX).find((p) => file.startsWith(p));
    return {
      pem: bytes.toString('utf8'),
      expected: prefix === undefined ? undefined : [EXPECTATION_BY_PREFIX[prefix]!],
    };
  },
  encode(input) {
    return { extension: '.pem', bytes: Buffer.from(input.pem, 'utf8') };
  },
};
