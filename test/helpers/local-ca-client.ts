// A CaClient that signs in-process with the real CA code (CSR checks and issuer), for tests that need
// control over timing and failures. Calls can be held, failed, or answered for another identity.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CaClient } from '../../core/identity/ca-client.js';
import { loadSigningAuthority, type SigningAuthority } from '../../ca/authority.js';
import { checkWorkloadCsr } from '../../ca/csr.js';
import { issueWorkloadCertificate } from '../../ca/issuer.js';

export class LocalCaClient implements CaClient {
  calls: string[] = [];
  /** Fail the next N calls with this message. */
  failNext = 0;
  /** When set, calls wait until `release()`. */
  hold = false;
  /** Issue for this identity instead of the requested one (a CA misbehaving). */
  answerAs: string | undefined;
  /** Returns this time instead of the wall clock (to align with a ManualClock). */
  now: () => Date = () => new Date();
  #held: (() => void)[] = [];
  #callWaiters: { n: number; resolve: () => void }[] = [];

  private constructor(readonly authority: SigningAuthority) {}

  static async create(): Promise<LocalCaClient> {
    const dir = mkdtempSync(join(tmpdir(), 'weft-localca-'));
    return new LocalCaClient(await loadSigningAuthority({ stateDir: dir, trustDomain: 'cluster.local' }));
  }

  /** Resolves once `n` calls have reached the CA. */
  waitForCalls(n: number): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#callWaiters.push({ n, resolve }));
  }

  heldCount(): number {
    return this.#held.length;
  }

  /** Lets the oldest held call proceed. */
  releaseOne(): void {
    this.#held.shift()?.();
  }

  async createCertificate(csrPem: string, spiffeId: string, ttlSeconds: number): Promise<string[]> {
    this.calls.push(spiffeId);
    for (const w of this.#callWaiters.filter((w) => this.calls.length >= w.n)) w.resolve();
    this.#callWaiters = this.#callWaiters.filter((w) => this.calls.length < w.n);
    if (this.hold) await new Promise<void>((resolve) => this.#held.push(resolve));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('CA unavailable (test)');
    }
    const id = this.answerAs ?? spiffeId;
    const key = await checkWorkloadCsr(csrPem, spiffeId);
    const issued = await issueWorkloadCertificate(this.authority, key, id, ttlSeconds, this.now());
    return issued.certChain;
  }

  close(): void {}
}
