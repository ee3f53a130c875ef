// CSRs made by OpenSSL, so the CA is tested against requests it did not produce itself.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.js';

export interface CsrSpec {
  /** `-addext` values, e.g. `subjectAltName=critical,URI:spiffe://…`. */
  readonly extensions: readonly string[];
  /** `ec` (P-256) by default; `rsa:1024` etc. for weak-key cases. */
  readonly key?: string;
}

export interface OpensslCsr {
  readonly csrPem: string;
  readonly keyPem: string;
}

export async function opensslCsr(spec: CsrSpec): Promise<OpensslCsr> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-csr-'));
  try {
    const keyArgs =
      spec.key === undefined || spec.key === 'ec'
        ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']
        : ['-newkey', spec.key];
    const args = ['req', '-new', ...keyArgs, '-nodes', '-keyout', join(dir, 'key.pem'), '-subj', '/'];
    for (const ext of spec.extensions) args.push('-addext', ext);
    args.push('-out', join(dir, 'csr.pem'));
    const r = await run('openssl', args);
    if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    return {
      csrPem: readFileSync(join(dir, 'csr.pem'), 'utf8'),
      keyPem: readFileSync(join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function spiffeSanExt(spiffeId: string): string {
  return `subjectAltName=critical,URI:${spiffeId}`;
}

/** Writes PEM files into a fresh temp dir; returns their paths. */
export function writeTempFiles(files: Record<string, string>): {
  dir: string;
  paths: Record<string, string>;
} {
  const dir = mkdtempSync(join(tmpdir(), 'weft-pem-'));
  const paths: Record<string, string> = {};
  for (const [name, body] of Object.entries(files)) {
    paths[name] = join(dir, name);
    writeFileSync(paths[name]!, body);
  }
  return { dir, paths };
}
