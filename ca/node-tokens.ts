// Local-mode caller authentication: each node agent holds a bootstrap token bound to its node name.
//
// The CA keeps only SHA-256 hashes of tokens (`<node> sha256:<hex>` per line), so reading the file does
// not hand out credentials. The file is re-read when it changes, so `weft ca token create` takes effect
// on a running CA without a restart.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, statSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { CallerAuthenticator, NodeCaller } from './caller.js';

export const NODE_TOKENS_FILE = 'node-tokens';
/** Kubernetes node names are DNS subdomains. */
const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const LINE_RE = /^(\S+)\s+sha256:([0-9a-f]{64})$/;
/** Bound on what we hash: real tokens are 43 characters; anything huge is hostile. */
const MAX_TOKEN_CHARS = 4096;

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

interface TokenEntry {
  readonly nodeName: string;
  readonly hash: Buffer;
}

export class BootstrapTokenAuthenticator implements CallerAuthenticator {
  readonly #file: string;
  readonly #log: Logger | undefined;
  #entries: TokenEntry[] = [];
  /** (inode, size, mtime) of the version loaded: an edit changes at least one of them. */
  #loadedVersion = '';

  constructor(file: string, log?: Logger) {
    this.#file = file;
    this.#log = log;
  }

  async authenticate(bearerToken: string | undefined, peer: string): Promise<NodeCaller> {
    if (!bearerToken)
      throw new WeftError(
        'ERR_UNAUTHENTICATED',
        'no bearer token: send "authorization: Bearer <node token>"',
        { peer },
      );
    if (bearerToken.length > MAX_TOKEN_CHARS)
      throw new WeftError('ERR_UNAUTHENTICATED', 'bearer token too long', { peer });
    this.#reloadIfChanged();
    const presented = hashToken(bearerToken);
    let match: TokenEntry | undefined;
    // Compare against every entry in constant time so timing does not reveal which hash was close.
    for (const entry of this.#entries) if (timingSafeEqual(entry.hash, presented)) match = entry;
    if (!match) throw new WeftError('ERR_UNAUTHENTICATED', 'unknown bearer token', { peer });
    return { kind: 'node', nodeName: match.nodeName };
  }

  #reloadIfChanged(): void {
    let version: string;
    try {
      const st = statSync(this.#file);
      version = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // No file: no node may call. (Deleting the file is how an operator revokes every token.)
      this.#entries = [];
      this.#loadedVersion = '';
      return;
    }
    if (version === this.#loadedVersion) return;
    this.#loadedVersion = version;
    try {
      this.#entries = parseTokenFile(readFileSync(this.#file, 'utf8'), this.#file);
    } catch (err) {
      // A half-written or mistyped file must not lock every node out: keep the last good tokens.
      this.#log?.error(
        { file: this.#file, error: errorMessage(err) },
        'node token file rejected; keeping the last good tokens',
      );
    }
  }
}

/** Parses the token file; a bad line is an error naming the file and line, never silently skipped. */
export function parseTokenFile(text: string, file: string): TokenEntry[] {
  const entries: TokenEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = LINE_RE.exec(line);
    if (!m || !NODE_NAME_RE.test(m[1]!))
      throw new WeftError('ERR_CA_STATE', `${file}:${i + 1}: expected "<node-name> sha256:<64 hex>"`, {
        object: file,
      });
    entries.push({ nodeName: m[1]!, hash: Buffer.from(m[2]!, 'hex') });
  });
  return entries;
}

/** Creates a fresh token for a node, records its hash, and returns the token (shown once). */
export function createNodeToken(file: string, nodeName: string): string {
  if (!NODE_NAME_RE.test(nodeName))
    throw new WeftError('ERR_CA_STATE', `node name ${JSON.stringify(nodeName)} is not a DNS subdomain`, {
      object: nodeName,
    });
  const token = randomBytes(32).toString('base64url');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const prefix = existsSync(file) && !readFileSync(file, 'utf8').endsWith('\n') ? '\n' : '';
  appendFileSync(file, `${prefix}${nodeName} sha256:${hashToken(token).toString('hex')}\n`, { mode: 0o600 });
  return token;
}
