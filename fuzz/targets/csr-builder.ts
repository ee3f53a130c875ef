// Generated PKCS#10 requests for the CSR target, built field by field from the ASN.1 schema so that a
// request can be anything the format allows, not only what a CSR tool would produce: several
// extensionRequest attributes or values, repeated extensions, CA:TRUE, SANs of every GeneralName form,
// keys of every strength, and signatures that do not verify. Each spec says what the CA must answer.
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import {
  AlgorithmIdentifier,
  Attribute,
  AttributeTypeAndValue,
  AttributeValue,
  BasicConstraints,
  Extension,
  Extensions,
  GeneralName,
  GeneralNames,
  Name,
  OtherName,
  RelativeDistinguishedName,
  SubjectPublicKeyInfo,
  id_ce_basicConstraints,
  id_ce_subjectAltName,
} from '@peculiar/asn1-x509';
import { x509 } from '../../core/x509.js';

export const FUZZ_SPIFFE_ID = 'spiffe://cluster.local/ns/fuzz/sa/workload';

/** What the CA does with a request: sign it, or refuse it with one of two codes. */
export type CsrOutcome = 'accept' | 'ERR_CSR_INVALID' | 'ERR_CSR_IDENTITY';

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';
const OID_KEY_USAGE = '2.5.29.15';
const OID_RSA_ENCRYPTION_SHA256 = '1.2.840.113549.1.1.11';
const OID_ECDSA_SHA = {
  sha256: '1.2.840.10045.4.3.2',
  sha384: '1.2.840.10045.4.3.3',
  sha512: '1.2.840.10045.4.3.4',
};
const OID_ED25519 = '1.3.101.112';

interface PoolKey {
  readonly name: string;
  readonly privateKey: KeyObject;
  readonly spki: ArrayBuffer;
  /** The CA's key rule (core/x509.ts keyStrength): ECDSA P-256/P-384 or RSA of 2048 bits or more. */
  readonly allowed: boolean;
  readonly kind: 'ec' | 'rsa' | 'ed25519';
}

/** Keys are made once per session: generating RSA keys per input would spend the budget on key generation. */
export function makeKeyPool(): PoolKey[] {
  const make = (
    name: string,
    allowed: boolean,
    kind: PoolKey['kind'],
    pair: { publicKey: KeyObject; privateKey: KeyObject },
  ) => {
    const der = pair.publicKey.export({ type: 'spki', format: 'der' });
    return { name, allowed, kind, privateKey: pair.privateKey, spki: new Uint8Array(der).buffer };
  };
  return [
    make('P-256', true, 'ec', generateKeyPairSync('ec', { namedCurve: 'P-256' })),
    make('P-384', true, 'ec', generateKeyPairSync('ec', { namedCurve: 'P-384' })),
    make('P-521', false, 'ec', generateKeyPairSync('ec', { namedCurve: 'P-521' })),
    make('secp256k1', false, 'ec', generateKeyPairSync('ec', { namedCurve: 'secp256k1' })),
    make('RSA-2048', true, 'rsa', generateKeyPairSync('rsa', { modulusLength: 2048 })),
    make('RSA-1024', false, 'rsa', generateKeyPairSync('rsa', { modulusLength: 1024 })),
    make('Ed25519', false, 'ed25519', generateKeyPairSync('ed25519')),
  ];
}

export type NameSpec =
  | { readonly form: 'uri' | 'dns' | 'email'; readonly value: string }
  | { readonly form: 'ip'; readonly value: string }
  | { readonly form: 'other'; readonly typeId: string }
  | { readonly form: 'rid'; readonly value: string }
  | { readonly form: 'dir' };

export type ExtensionSpec =
  | { readonly kind: 'san'; readonly names: readonly NameSpec[]; readonly critical: boolean }
  | { readonly kind: 'basicConstraints'; readonly ca: boolean | undefined }
  | { readonly kind: 'keyUsage' }
  /** Arbitrary bytes under an OID: unknown OIDs must be ignored, garbage under SAN or BC refused. */
  | { readonly kind: 'raw'; readonly oid: string; readonly value: Uint8Array };

export interface CsrSpec {
  readonly key: number;
  readonly subject: readonly string[];
  /** extensionRequest attributes; each holds values; each value is a list of extensions. */
  readonly requests: readonly (readonly (readonly ExtensionSpec[])[])[];
  readonly challengePassword: boolean;
  readonly hash: 'sha256' | 'sha384' | 'sha512';
  readonly signature: 'valid' | 'flipped' | 'truncated' | 'other-key' | 'wrong-algorithm';
}

const URI_VALUES = [
  FUZZ_SPIFFE_ID,
  FUZZ_SPIFFE_ID + '/',
  FUZZ_SPIFFE_ID.toUpperCase(),
  'SPIFFE://cluster.local/ns/fuzz/sa/workload',
  'spiffe://cluster.local/ns/fuzz/sa/other',
  'spiffe://evil.example/ns/fuzz/sa/workload',
  'spiffe://cluster.local/ns/fuzz/sa/workload?x=1',
  'spiffe://cluster.local/ns/fuzz/sa/workload#frag',
  'spiffe://cluster.local/ns/fuzz/sa/workload\u0000',
  ' ' + FUZZ_SPIFFE_ID,
  'spiffe://cluster.local/ns/kube-system/sa/default',
  'https://cluster.local/ns/fuzz/sa/workload',
  '',
];

/** IA5String and PrintableString take ASCII only; other bytes reach the parser through mutation. */
const asciiText = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 40,
});

const nameSpec: fc.Arbitrary<NameSpec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      form: fc.constant('uri' as const),
      value: fc.oneof(fc.constantFrom(...URI_VALUES), asciiText),
    }),
  },
  fc.record({ form: fc.constantFrom('dns' as const, 'email' as const), value: asciiText }),
  fc.record({
    form: fc.constant('ip' as const),
    value: fc.oneof(fc.ipV4(), fc.constantFrom('::1', 'fd00::1')),
  }),
  fc.record({
    form: fc.constant('other' as const),
    typeId: fc.constantFrom('1.3.6.1.4.1.311.20.2.3', '1.2.3.4'),
  }),
  fc.record({ form: fc.constant('rid' as const), value: fc.constantFrom('1.2.3.4', '2.5.29.17') }),
  fc.record({ form: fc.constant('dir' as const) }),
);

const exactSan: ExtensionSpec = {
  kind: 'san',
  names: [{ form: 'uri', value: FUZZ_SPIFFE_ID }],
  critical: true,
};

const extensionSpec: fc.Arbitrary<ExtensionSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.constant(exactSan) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('san' as const),
      names: fc.array(nameSpec, { maxLength: 3 }),
      critical: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('basicConstraints' as const),
      ca: fc.option(fc.boolean(), { nil: undefined }),
    }),
  },
  fc.constant({ kind: 'keyUsage' } as const),
  fc.record({
    kind: fc.constant('raw' as const),
    oid: fc.constantFrom(
      id_ce_subjectAltName,
      id_ce_basicConstraints,
      '1.2.3.4.5',
      '2.5.29.37',
      '1.3.6.1.5.5.7.1.1',
    ),
    value: fc.oneof(
      fc.uint8Array({ maxLength: 24 }),
      fc.constantFrom(new Uint8Array([0x30, 0x00]), new Uint8Array([0x30, 0x03, 0x01, 0x01, 0xff])),
    ),
  }),
);

/** Mostly one request with one value holding a few extensions; sometimes none, or more than one. */
const requestsSpec = fc.oneof(
  { weight: 6, arbitrary: fc.array(extensionSpec, { maxLength: 4 }).map((exts) => [[exts]]) },
  fc.array(fc.array(fc.array(extensionSpec, { maxLength: 3 }), { maxLength: 2 }), { maxLength: 3 }),
);

export function csrSpecArbitrary(keyCount: number): fc.Arbitrary<CsrSpec> {
  return fc.record({
    key: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.nat(keyCount - 1)),
    subject: fc.array(asciiText, { maxLength: 2 }),
    requests: requestsSpec,
    challengePassword: fc.boolean(),
    hash: fc.constantFrom('sha256' as const, 'sha384' as const, 'sha512' as const),
    signature: fc.oneof(
      { weight: 8, arbitrary: fc.constant('valid' as const) },
      fc.constantFrom(
        'flipped' as const,
        'truncated' as const,
        'other-key' as const,
        'wrong-algorithm' as const,
      ),
    ),
  });
}

/** What checkWorkloadCsr may answer for `spec`, from the CA's documented rules alone. */
export function expectedOutcomes(spec: CsrSpec, keys: readonly PoolKey[]): ReadonlySet<CsrOutcome> {
  // Key and signature are checked before the extensions, so with either bad the answer is INVALID.
  if (!keys[spec.key]!.allowed || spec.signature !== 'valid') return new Set(['ERR_CSR_INVALID']);
  if (spec.requests.length === 0) return new Set(['ERR_CSR_IDENTITY']);
  if (spec.requests.length > 1 || spec.requests[0]!.length !== 1) return new Set(['ERR_CSR_INVALID']);
  const exts = spec.requests[0]![0]!;
  const oids = exts.map(oidOf);
  const firstSan = exts.find((e) => oidOf(e) === id_ce_subjectAltName);
  const repeated = new Set(oids).size !== oids.length;
  const asksCa = exts.some((e) => e.kind === 'basicConstraints' && e.ca === true);
  const sanWrong = firstSan === undefined || (firstSan.kind === 'san' && !isExactSan(firstSan));
  // Garbage under SAN fails to parse (INVALID) or parses to other names (IDENTITY).
  const rawSan = firstSan?.kind === 'raw';
  // Garbage under BC fails to parse (INVALID) or parses as a BasicConstraints (`30 00` is CA:FALSE).
  const rawBc = exts.some((e) => e.kind === 'raw' && e.oid === id_ce_basicConstraints);
  // The walk over the extensions stops at the first defect it meets, so each defect's code is possible.
  const outcomes = new Set<CsrOutcome>();
  if (repeated || asksCa || rawSan || rawBc) outcomes.add('ERR_CSR_INVALID');
  if (sanWrong || rawSan) outcomes.add('ERR_CSR_IDENTITY');
  if (!repeated && !asksCa && !sanWrong && !rawSan) outcomes.add('accept');
  return outcomes;
}

function isExactSan(e: Extract<ExtensionSpec, { kind: 'san' }>): boolean {
  return e.names.length === 1 && e.names[0]!.form === 'uri' && e.names[0]!.value === FUZZ_SPIFFE_ID;
}

function oidOf(e: ExtensionSpec): string {
  switch (e.kind) {
    case 'san':
      return id_ce_subjectAltName;
    case 'basicConstraints':
      return id_ce_basicConstraints;
    case 'keyUsage':
      return OID_KEY_USAGE;
    case 'raw':
      return e.oid;
  }
}

function generalName(n: NameSpec): GeneralName {
  switch (n.form) {
    case 'uri':
      return new GeneralName({ uniformResourceIdentifier: n.value });
    case 'dns':
      return new GeneralName({ dNSName: n.value });
    case 'email':
      return new GeneralName({ rfc822Name: n.value });
    case 'ip':
      return new GeneralName({ iPAddress: n.value });
    case 'other':
      return new GeneralName({
        otherName: new OtherName({ typeId: n.typeId, value: new Uint8Array([0x0c, 0x01, 0x78]).buffer }),
      });
    case 'rid':
      return new GeneralName({ registeredID: n.value });
    case 'dir':
      return new GeneralName({ directoryName: nameOf(['dir']) });
  }
}

function extension(e: ExtensionSpec): Extension {
  const wrap = (extnID: string, value: ArrayBuffer | Uint8Array, critical = false) =>
    new Extension({ extnID, critical, extnValue: new OctetString(value) });
  switch (e.kind) {
    case 'san':
      return wrap(
        id_ce_subjectAltName,
        AsnConvert.serialize(new GeneralNames(e.names.map(generalName))),
        e.critical,
      );
    case 'basicConstraints':
      return wrap(
        id_ce_basicConstraints,
        AsnConvert.serialize(new BasicConstraints(e.ca === undefined ? {} : { cA: e.ca })),
        true,
      );
    case 'keyUsage':
      return wrap(OID_KEY_USAGE, new Uint8Array([0x03, 0x02, 0x05, 0xa0]), true);
    case 'raw':
      return wrap(e.oid, e.value);
  }
}

function nameOf(commonNames: readonly string[]): Name {
  return new Name(
    commonNames.map(
      (cn) =>
        new RelativeDistinguishedName([
          new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) }),
        ]),
    ),
  );
}

function signatureAlgorithm(key: PoolKey, spec: CsrSpec): AlgorithmIdentifier {
  if (spec.signature === 'wrong-algorithm')
    return new AlgorithmIdentifier({
      algorithm: key.kind === 'rsa' ? OID_ECDSA_SHA.sha256 : OID_RSA_ENCRYPTION_SHA256,
    });
  if (key.kind === 'ed25519') return new AlgorithmIdentifier({ algorithm: OID_ED25519 });
  if (key.kind === 'rsa')
    return new AlgorithmIdentifier({ algorithm: OID_RSA_ENCRYPTION_SHA256, parameters: null });
  return new AlgorithmIdentifier({ algorithm: OID_ECDSA_SHA[spec.hash] });
}

/** The request `spec` describes, as PEM. */
export function buildCsr(spec: CsrSpec, keys: readonly PoolKey[]): string {
  const key = keys[spec.key]!;
  const attributes = spec.requests.map(
    (values) =>
      new Attribute({
        type: OID_EXTENSION_REQUEST,
        values: values.map((exts) => AsnConvert.serialize(new Extensions(exts.map(extension)))),
      }),
  );
  if (spec.challengePassword)
    attributes.push(
      new Attribute({
        type: OID_CHALLENGE_PASSWORD,
        values: [new Uint8Array([0x0c, 0x02, 0x70, 0x77]).buffer],
      }),
    );
  const info = new CertificationRequestInfo({
    subject: nameOf(spec.subject),
    subjectPKInfo: AsnConvert.parse(key.spki, SubjectPublicKeyInfo),
    attributes: new Attributes(attributes),
  });
  const tbs = Buffer.from(AsnConvert.serialize(info));
  const signer = spec.signature === 'other-key' ? keys[(spec.key + 1) % keys.length]! : key;
  const hash = key.kind === 'rsa' ? 'sha256' : spec.hash;
  let signature: Buffer = sign(
    signer.kind === 'ed25519' ? null : signer.kind === 'rsa' ? 'sha256' : hash,
    tbs,
    signer.privateKey,
  );
  if (spec.signature === 'flipped') signature[signature.length >> 1]! ^= 0x01;
  if (spec.signature === 'truncated') signature = signature.subarray(0, signature.length - 3);
  const request = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: signatureAlgorithm(key, spec),
    signature: new Uint8Array(signature).buffer,
  });
  return x509.PemConverter.encode(AsnConvert.serialize(request), 'CERTIFICATE REQUEST') + '\n';
}

/** The SPKI DER of a PEM key, for comparing what the CA returned with the key a request carried. */
export function spkiOf(publicKey: KeyObject): Buffer {
  return createPublicKey(publicKey).export({ type: 'spki', format: 'der' });
}
