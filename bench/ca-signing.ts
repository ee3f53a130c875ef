// CA signing rate and latency: a real `weft ca serve` process, a gRPC/TLS client issuing CSRs with a
// fixed concurrency. CSRs are made before the clock starts, so the figure is the CA's cost alone.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GrpcCaClient } from '../core/identity/ca-client.js';
import { createWorkloadCsr } from '../core/identity/csr.js';
import { DEMO_MANIFESTS } from '../lab/demo-manifests.js';
import { CA_SERVER_NAME, startCaProcess } from '../lab/ca-process.js';
import { sampleProcess } from './proc-stats.js';

export interface CaBenchOptions {
  readonly requests: number;
  readonly concurrency: number;
  readonly warmup: number;
}

export interface CaBenchResult {
  readonly requests: number;
  readonly concurrency: number;
  readonly errors: number;
  readonly seconds: number;
  readonly certsPerSecond: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** CPU seconds the CA process spent per 1000 certificates. */
  readonly caCpuSecondsPer1000: number;
  readonly caRssMiB: number;
}

const IDENTITY = 'spiffe://cluster.local/ns/shop/sa/web';
/** Distinct CSRs cycled through; the CA parses and signs each request anew either way. */
const CSR_POOL = 64;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runCaBench(options: CaBenchOptions): Promise<CaBenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-ca-'));
  const manifests = join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'demo.yaml'), DEMO_MANIFESTS);
  const ca = await startCaProcess(join(dir, 'ca'), manifests, join(dir, 'ca.log'));
  try {
    const client = new GrpcCaClient({
      address: ca.address,
      rootCertFile: ca.rootCertFile,
      serverName: CA_SERVER_NAME,
      tokenFile: ca.writeNodeToken('node-1', join(dir, 'token')),
    });
    const csrs: string[] = [];
    for (let i = 0; i < CSR_POOL; i++) csrs.push((await createWorkloadCsr(IDENTITY)).csrPem);

    let next = 0;
    let errors = 0;
    const latencies: number[] = [];
    const worker = async (total: number, record: boolean): Promise<void> => {
      while (next < total) {
        const i = next++;
        const start = performance.now();
        try {
          await client.createCertificate(csrs[i % CSR_POOL]!, IDENTITY, 3600);
          if (record) latencies.push(performance.now() - start);
        } catch {
          if (record) errors++;
        }
      }
    };
    const pool = (total: number, record: boolean) =>
      Promise.all(Array.from({ length: options.concurrency }, () => worker(total, record)));

    await pool(options.warmup, false);
    next = 0;
    const before = sampleProcess(ca.child.pid!);
    const t0 = performance.now();
    await pool(options.requests, true);
    const seconds = (performance.now() - t0) / 1000;
    const after = sampleProcess(ca.child.pid!);
    client.close();

    const sorted = latencies.sort((a, b) => a - b);
    const round = (v: number) => Math.round(v * 100) / 100;
    return {
      requests: options.requests,
      concurrency: options.concurrency,
      errors,
      seconds: round(seconds),
      certsPerSecond: Math.round(latencies.length / seconds),
      latencyMs: {
        p50: round(percentile(sorted, 50)),
        p90: round(percentile(sorted, 90)),
        p99: round(percentile(sorted, 99)),
        max: round(sorted.at(-1) ?? NaN),
      },
      caCpuSecondsPer1000: round(((after.cpuSeconds - before.cpuSeconds) / options.requests) * 1000),
      caRssMiB: round(after.rssBytes / 2 ** 20),
    };
  } finally {
    await ca.stop();
  }
}
