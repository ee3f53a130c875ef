// The CA's root kept in a Secret, so every replica signs with the same root and a restarted pod finds it
// again (Istio's istio-ca-secret, in the `cacerts` key layout so a plugged-in intermediate works the same).
//
// At start: read the Secret. When it is missing, the replica allowed to create it (the leader, or the
// only replica without leader election) generates a self-signed root and creates the Secret; a 409 means
// another replica won the race, and its Secret is read instead. The others poll (backoff doubling to
// MAX_POLL_MS) until it appears, giving up after `waitMs`. An existing Secret is never overwritten: a
// broken one stops the CA with the reason.
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { WeftError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { LeaderElector } from '../../core/kubernetes/leader-election.js';
import {
  authorityFromPlugin,
  generateSelfSignedRoot,
  PLUGIN_FILES,
  selfSignedPluginMaterial,
  type AuthoritySource,
  type PluginMaterial,
  type SigningAuthority,
} from '../authority.js';
import { apiErrorReason, apiStatusCode, DEFAULT_API_TIMEOUT_MS, withTimeout } from './api-call.js';

/** First wait for another replica's Secret; short, as the leader is usually elected within a second. */
const FIRST_POLL_MS = 250;
const MAX_POLL_MS = 5_000;
/** A replica that sees no root for this long exits with the reason, and Kubernetes restarts it. */
export const DEFAULT_ROOT_WAIT_MS = 5 * 60_000;

export interface RootSecretOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  readonly trustDomain: string;
  /** Decides who creates a missing Secret; without one, this replica does. */
  readonly elector?: LeaderElector | undefined;
  readonly timeoutMs?: number;
  readonly waitMs?: number;
  readonly log: Logger;
}

export class RootSecretSource implements AuthoritySource {
  readonly description: string;
  readonly #api: CoreV1Api;
  readonly #options: RootSecretOptions;

  constructor(options: RootSecretOptions) {
    this.description = `Secret ${options.namespace}/${options.name}`;
    this.#api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#options = options;
  }

  async load(): Promise<SigningAuthority> {
    const { elector, log } = this.#options;
    const waitMs = this.#options.waitMs ?? DEFAULT_ROOT_WAIT_MS;
    const deadline = Date.now() + waitMs;
    let pollMs = FIRST_POLL_MS;
    let lastProblem: string;
    while (true) {
      try {
        const secret = await this.#read();
        if (secret !== undefined) return await this.#authority(secret, 'loaded');
        if (elector === undefined || elector.isLeader) {
          const created = await this.#create();
          if (created !== undefined) return created;
          continue; // Another replica created it first: read theirs at once.
        }
        lastProblem = 'not created yet (this replica is not the leader)';
      } catch (err) {
        if (err instanceof WeftError && err.code === 'ERR_CA_STATE') throw err;
        lastProblem = apiErrorReason(err);
        log.warn({ secret: this.description, error: lastProblem }, 'root secret: cannot read or create it');
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new WeftError(
          'ERR_CA_STATE',
          `${this.description}: no root after waiting ${waitMs} ms: ${lastProblem}`,
          { object: this.description },
        );
      // Said once; the polls that follow are detail.
      log[pollMs === FIRST_POLL_MS ? 'info' : 'debug'](
        { secret: this.description, retry_ms: pollMs },
        'root secret: waiting for it',
      );
      await this.#pause(Math.min(pollMs, left));
      pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
    }
  }

  /** Sleeps `ms`, or less when this replica becomes the leader (it may then create the Secret). */
  #pause(ms: number): Promise<void> {
    const elector = this.#options.elector;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        elector?.off('leading', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      elector?.on('leading', done);
    });
  }

  async #read(): Promise<V1Secret | undefined> {
    const { namespace, name } = this.#options;
    try {
      return await this.#api.readNamespacedSecret({ namespace, name }, this.#timeout());
    } catch (err) {
      if (apiStatusCode(err) === 404) return undefined;
      throw err;
    }
  }

  /** Generates a root and creates the Secret; undefined when another replica created it first. */
  async #create(): Promise<SigningAuthority | undefined> {
    const { namespace, name, trustDomain, log } = this.#options;
    const material = selfSignedPluginMaterial(await generateSelfSignedRoot(trustDomain, new Date()));
    const data: Record<string, string> = {};
    for (const part of Object.keys(PLUGIN_FILES) as (keyof typeof PLUGIN_FILES)[])
      data[PLUGIN_FILES[part]] = Buffer.from(material[part] ?? '').toString('base64');
    try {
      await this.#api.createNamespacedSecret(
        {
          namespace,
          body: { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'Opaque', data },
        },
        this.#timeout(),
      );
    } catch (err) {
      if (apiStatusCode(err) === 409) {
        log.info({ secret: this.description }, 'root secret: another replica created it first');
        return undefined;
      }
      throw err;
    }
    log.info(
      { secret: this.description },
      'root secret: generated a self-signed root and created the Secret',
    );
    return authorityFromPlugin(material, (part) => this.#where(part), 'generated');
  }

  /** The authority from the Secret's `cacerts` keys. */
  async #authority(secret: V1Secret, origin: SigningAuthority['origin']): Promise<SigningAuthority> {
    const text = (part: keyof typeof PLUGIN_FILES): string | undefined => {
      const value = secret.data?.[PLUGIN_FILES[part]];
      return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
    };
    const cert = text('cert') ?? '';
    // Istio's own istio-ca-secret leaves root-cert.pem empty for a self-signed root: the cert is the root.
    const root = text('root') || cert;
    const material: PluginMaterial = {
      cert,
      key: text('key') ?? '',
      root,
      chain: text('chain') || undefined,
    };
    return authorityFromPlugin(material, (part) => this.#where(part), origin);
  }

  #where(part: keyof typeof PLUGIN_FILES): string {
    return `${this.description} key ${PLUGIN_FILES[part]}`;
  }

  #timeout() {
    return withTimeout(this.#options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS);
  }
}
