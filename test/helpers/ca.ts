// Starts a real CA on loopback (TLS, gRPC) for tests, and calls it with exactly the request a test wants.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Test } from 'tap';
import {
  createCaStub,
  type CertificateRequest,
  IMPERSONATED_IDENTITY_KEY,
  stringStruct,
} from '../../core/ca-api.js';
import { formatHostPort, type HostPort } from '../../core/address.js';
import { startCa, DEFAULT_WORKLOAD_TTL_S, MAX_WORKLOAD_TTL_S, type CaHandle } from '../../ca/main.js';
import type { PodPlacement } from '../../ca/node-authorizer.js';

/** Pods by node: `{ 'node-1': ['default/web'] }` means SA web of namespace default runs on node-1. */
export class StaticPlacement implements PodPlacement {
  constructor(readonly pods: Record<string, readonly string[]>) {}
  hasPodOnNode(namespace: string, serviceAccount: string, nodeName: string): boolean {
    return (this.pods[nodeName] ?? []).includes(`${namespace}/${serviceAccount}`);
  }
}

export interface TestCaOptions {
  readonly stateDir?: string;
  readonly pluginDir?: string;
  readonly placement: PodPlacement;
  readonly trustDomain?: string;
}

export async function startTestCa(options: TestCaOptions): Promise<CaHandle & { stateDir: string }> {
  const stateDir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'weft-ca-'));
  const handle = await startCa({
    stateDir,
    pluginDir: options.pluginDir,
    trustDomain: options.trustDomain ?? 'cluster.local',
    grpcListen: { host: '127.0.0.1', port: 0 },
    httpListen: { host: '127.0.0.1', port: 0 },
    defaultTtlSeconds: DEFAULT_WORKLOAD_TTL_S,
    maxTtlSeconds: MAX_WORKLOAD_TTL_S,
    servingDnsNames: ['localhost'],
    servingIps: ['127.0.0.1'],
    placement: options.placement,
  });
  return Object.assign(handle, { stateDir });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface RawCall {
  readonly token?: string | undefined;
  readonly csr: string;
  readonly ttlSeconds?: number;
  readonly identity?: string | undefined;
}

export interface RawResult {
  readonly code: grpc.status;
  readonly details: string;
  readonly chain: string[];
}

/** A call the CA must refuse, with the gRPC status and a pattern of the reason it must give. */
export interface RefusalCase {
  readonly name: string;
  readonly call: RawCall;
  readonly code: grpc.status;
  readonly details: RegExp;
}

/** Makes each call and checks it was refused as the case says, with nothing issued. */
export async function expectRefusals(
  t: Test,
  cases: readonly RefusalCase[],
  call: (c: RawCall) => Promise<RawResult>,
): Promise<void> {
  for (const c of cases) {
    const res = await call(c.call);
    t.equal(
      res.code,
      c.code,
      `${c.name}: ${grpc.status[c.code]} (got ${grpc.status[res.code]}: ${res.details})`,
    );
    t.match(res.details, c.details, `${c.name}: reason`);
    t.same(res.chain, [], `${c.name}: nothing issued`);
  }
}

/** One CreateCertificate call with exactly the token, identity, CSR and TTL given. */
export function rawCreateCertificate(address: HostPort, rootPem: string, call: RawCall): Promise<RawResult> {
  const client = createCaStub(formatHostPort(address), grpc.credentials.createSsl(Buffer.from(rootPem)), {
    'grpc.ssl_target_name_override': 'localhost',
  });
  const md = new grpc.Metadata();
  if (call.token !== undefined) md.set('authorization', `Bearer ${call.token}`);
  const request: CertificateRequest = {
    csr: call.csr,
    validityDuration: String(call.ttlSeconds ?? 0),
    metadata:
      call.identity === undefined ? undefined : stringStruct({ [IMPERSONATED_IDENTITY_KEY]: call.identity }),
  };
  return new Promise((resolve) => {
    client.CreateCertificate(request, md, {}, (err, res) => {
      client.close();
      if (err) resolve({ code: err.code, details: err.details, chain: [] });
      else resolve({ code: grpc.status.OK, details: '', chain: res?.certChain ?? [] });
    });
  });
}
