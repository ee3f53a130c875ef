// The signing material of the mesh CA: a root we generate and keep, or a plugged-in root/intermediate.
// Files live here; a Secret holding the same `cacerts` layout is read and written by
// kubernetes/root-secret.ts with the generation and checks below.
//
// Invariants: the signing certificate is a CA certificate whose key we hold; `chain` runs from the
// signing certificate up to (not including) the roots; `rootsPem` is the trust bundle every workload
// gets. A restart loads the same files, so the root and everything it signed stay valid.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../core/errors.js';
import {
  x509,
  generateP256KeyPair,
  exportPkcs8Pem,
  importSigningKey,
  keyMatchesCertificate,
  parseCertificates,
  chainsToRoots,
  randomSerialHex,
  P256_SIGNING,
  type SigningKeyAlgorithm,
  NOT_BEFORE_BACKDATE_MS,
} from '../core/x509.js';

/** Ten years: a generated root outlives any sane deployment of the lab or a test cluster. */
const GENERATED_ROOT_TTL_MS = 10 * 365 * 24 * 3600 * 1000;

/** Istio's layout for a plugged-in CA (the `cacerts` secret), so existing material drops in. */
export const PLUGIN_FILES = {
  cert: 'ca-cert.pem',
  key: 'ca-key.pem',
  root: 'root-cert.pem',
  chain: 'cert-chain.pem',
} as const;

/** Files of a root the CA generated itself, under its state directory. */
export const SELF_SIGNED_FILES = { cert: 'root-cert.pem', key: 'root-key.pem' } as const;

export interface SigningAuthority {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
  readonly algorithm: SigningKeyAlgorithm;
  /** From the signing certificate up to, not including, the roots (leaf-to-root order). */
  readonly chain: readonly x509.X509Certificate[];
  /** The trust bundle: one or more root certificates in PEM. */
  readonly rootsPem: string;
  /** Where the material came from, for logs. */
  readonly origin: 'generated' | 'loaded' | 'plugin';
}

/** Where the CA's signing authority comes from (files, a Secret); loaded once, at start. */
export interface AuthoritySource {
  /** For logs and readiness: `Secret weft-system/weft-ca-root`. */
  readonly description: string;
  /** Resolves with the authority, or rejects with ERR_CA_STATE naming what is wrong. */
  load(): Promise<SigningAuthority>;
}

function caStateError(message: string, file: string, cause?: unknown): WeftError {
  return new WeftError('ERR_CA_STATE', `${file}: ${message}`, { object: file }, cause);
}

function readPem(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw caStateError('cannot read', file, err);
  }
}

function isCaCertificate(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  return bc?.ca === true;
}

/**
 * Writes a file atomically with the given mode, so a crash never leaves half a key behind. The temporary
 * name is random and opened with O_EXCL, so a planted file or symlink cannot receive the key.
 */
function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.tmp-${randomBytes(8).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    fchmodSync(fd, mode);
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** The state directory holds the root key: it must be ours alone to write. */
function checkStateDir(dir: string): void {
  const st = statSync(dir);
  if (!st.isDirectory()) throw caStateError('is not a directory', dir);
  if ((st.mode & 0o022) !== 0)
    throw caStateError(
      `is writable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod go-w it`,
      dir,
    );
}

/** A generated root key readable by anyone else has leaked; refuse to keep signing with it unnoticed. */
function checkKeyMode(file: string): void {
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw caStateError(
      `has mode ${mode.toString(8)}; a CA key must be readable by its owner only (chmod 600)`,
      file,
    );
}

/** A new self-signed root for `trustDomain`: the certificate and its PKCS#8 key, in PEM. */
export async function generateSelfSignedRoot(
  trustDomain: string,
  now: Date,
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateP256KeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    // Istio names its self-signed root after the trust domain in O=; tools that show it stay familiar.
    name: `O=${trustDomain}, CN=Weft Root CA`,
    notBefore: new Date(now.getTime() - NOT_BEFORE_BACKDATE_MS),
    notAfter: new Date(now.getTime() + GENERATED_ROOT_TTL_MS),
    signingAlgorithm: P256_SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPkcs8Pem(keys.privateKey) };
}

/**
 * Signing material in Istio's `cacerts` layout, as text: from a folder of files or from a Secret. `chain`
 * is absent when the source has no cert-chain.pem.
 */
export interface PluginMaterial {
  readonly cert: string;
  readonly key: string;
  readonly root: string;
  readonly chain: string | undefined;
}

/** A self-signed root in the `cacerts` layout: it signs, it is the root, and it is the whole chain. */
export function selfSignedPluginMaterial(root: { certPem: string; keyPem: string }): PluginMaterial {
  return { cert: root.certPem, key: root.keyPem, root: root.certPem, chain: root.certPem };
}

/**
 * Checks `cacerts` material and builds the authority: the signing cert is a CA whose key matches, and its
 * chain verifies up to the roots. `where(key)` names where each part came from (a file, a Secret's key)
 * in errors.
 */
export async function authorityFromPlugin(
  material: PluginMaterial,
  where: (part: keyof typeof PLUGIN_FILES) => string,
  origin: SigningAuthority['origin'],
): Promise<SigningAuthority> {
  const [cert] = parseCertificates(material.cert);
  if (!cert) throw caStateError('holds no PEM certificate', where('cert'));
  if (!isCaCertificate(cert))
    throw caStateError('is not a CA certificate (basicConstraints CA:TRUE)', where('cert'));
  let imported;
  try {
    imported = await importSigningKey(material.key);
  } catch (err) {
    throw caStateError(`unusable key: ${(err as Error).message}`, where('key'), err);
  }
  if (!keyMatchesCertificate(material.key, cert))
    throw caStateError(`does not match ${PLUGIN_FILES.cert}`, where('key'));
  const rootsPem = material.root;
  const roots = parseCertificates(rootsPem);
  if (roots.length === 0) throw caStateError('holds no PEM certificate', where('root'));
  // cert-chain.pem is the signing cert followed by its intermediates; without it the cert is the chain.
  let chain = material.chain === undefined ? [cert] : parseCertificates(material.chain);
  chain = chain.filter((c) => !roots.some((r) => r.equal(c)));
  if (chain.length === 0 || !chain[0]!.equal(cert)) chain = [cert, ...chain.filter((c) => !c.equal(cert))];
  const selfSignedRoot = roots.some((r) => r.equal(cert));
  if (!selfSignedRoot && !(await chainsToRoots(chain, roots)))
    throw caStateError(
      `the chain from "${cert.subject}" does not verify up to ${PLUGIN_FILES.root}`,
      where('chain'),
    );
  return {
    cert,
    key: imported.key,
    algorithm: imported.algorithm,
    chain: selfSignedRoot ? [] : chain,
    rootsPem: rootsPem.endsWith('\n') ? rootsPem : rootsPem + '\n',
    origin,
  };
}

async function loadPlugin(dir: string): Promise<SigningAuthority> {
  const file = (part: keyof typeof PLUGIN_FILES): string => join(dir, PLUGIN_FILES[part]);
  const material: PluginMaterial = {
    cert: readPem(file('cert')),
    key: readPem(file('key')),
    root: readPem(file('root')),
    chain: existsSync(file('chain')) ? readPem(file('chain')) : undefined,
  };
  return authorityFromPlugin(material, file, 'plugin');
}

async function loadOrGenerateRoot(dir: string, trustDomain: string, now: Date): Promise<SigningAuthority> {
  const certFile = join(dir, SELF_SIGNED_FILES.cert);
  const keyFile = join(dir, SELF_SIGNED_FILES.key);
  let origin: SigningAuthority['origin'] = 'loaded';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkStateDir(dir);
  if (!existsSync(certFile) && !existsSync(keyFile)) {
    const { certPem, keyPem } = await generateSelfSignedRoot(trustDomain, now);
    // Key first: a cert without its key would look like a half-finished plug-in.
    writeAtomic(keyFile, keyPem, 0o600);
    writeAtomic(certFile, certPem, 0o644);
    origin = 'generated';
  } else if (!existsSync(certFile) || !existsSync(keyFile)) {
    const missing = existsSync(certFile) ? keyFile : certFile;
    throw caStateError('is missing while its pair exists; refusing to generate a new root over it', missing);
  }
  const certPem = readPem(certFile);
  const [cert] = parseCertificates(certPem);
  if (!cert) throw caStateError('holds no PEM certificate', certFile);
  checkKeyMode(keyFile);
  const keyPem = readPem(keyFile);
  if (!keyMatchesCertificate(keyPem, cert))
    throw caStateError(`does not match ${SELF_SIGNED_FILES.cert}`, keyFile);
  const imported = await importSigningKey(keyPem);
  return { cert, key: imported.key, algorithm: imported.algorithm, chain: [], rootsPem: certPem, origin };
}

export interface AuthorityOptions {
  /** State directory for a generated root. */
  readonly stateDir: string;
  /** A directory in Istio's `cacerts` layout; when set, it is used instead of a generated root. */
  readonly pluginDir?: string | undefined;
  readonly trustDomain: string;
  readonly now?: Date;
}

/** Loads the plug-in CA when given, else the persisted root, generating it on first start. */
export async function loadSigningAuthority(options: AuthorityOptions): Promise<SigningAuthority> {
  if (options.pluginDir) return loadPlugin(options.pluginDir);
  return loadOrGenerateRoot(options.stateDir, options.trustDomain, options.now ?? new Date());
}

/** loadSigningAuthority as an AuthoritySource. */
export function fileAuthoritySource(options: AuthorityOptions): AuthoritySource {
  return {
    description: options.pluginDir ? `plugin certs ${options.pluginDir}` : `root in ${options.stateDir}`,
    load: () => loadSigningAuthority(options),
  };
}
