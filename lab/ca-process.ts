// A `weft ca serve` process on loopback, fed by a manifest folder, for the demo, the lab and the bench.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SELF_SIGNED_FILES } from '../ca/authority.js';
import { createNodeToken, NODE_TOKENS_FILE } from '../ca/node-tokens.js';
import type { HostPort } from '../core/address.js';
import { freePort, spawnWeft, stopChild, waitForHttpOk } from './processes.js';

/** A name the CA's serving certificate carries by default; TLS SNI may not carry an IP (RFC 6066). */
export const CA_SERVER_NAME = 'localhost';

export interface CaProcess {
  readonly child: ChildProcess;
  readonly address: HostPort;
  readonly rootCertFile: string;
  /** Creates a bootstrap token for `node`, writes it to `file` (mode 0600), returns the file. */
  writeNodeToken(node: string, file: string): string;
  stop(): Promise<void>;
}

/** `weft ca serve …` with state in `caDir`, config from `manifestsDir`, gRPC and HTTP on the given addresses. */
export function caServeArgs(caDir: string, manifestsDir: string, grpc: string, http: string): string[] {
  return [
    'ca',
    'serve',
    '--dir',
    caDir,
    '--config',
    `file:${manifestsDir}`,
    '--listen',
    grpc,
    '--http-listen',
    http,
  ];
}

/** Starts the CA with its state in `caDir` and config from `manifestsDir`; resolves once it is ready. */
export async function startCaProcess(
  caDir: string,
  manifestsDir: string,
  logFile: string,
): Promise<CaProcess> {
  mkdirSync(caDir, { recursive: true });
  const [port, httpPort] = [await freePort(), await freePort()];
  const listen = (p: number) => `127.0.0.1:${p}`;
  const child = spawnWeft(caServeArgs(caDir, manifestsDir, listen(port), listen(httpPort)), logFile);
  try {
    await waitForHttpOk('the CA', `http://${listen(httpPort)}/healthz/ready`);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return {
    child,
    address: { host: '127.0.0.1', port },
    rootCertFile: join(caDir, SELF_SIGNED_FILES.cert),
    writeNodeToken(node, file) {
      writeFileSync(file, createNodeToken(join(caDir, NODE_TOKENS_FILE), node) + '\n', { mode: 0o600 });
      return file;
    },
    stop: () => stopChild(child),
  };
}
