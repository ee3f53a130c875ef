// Caller authentication on Kubernetes: the bearer token is a projected service-account token for the
// audience `istio-ca`, checked by the API server with a TokenReview (as istiod's KubeJWTAuthenticator,
// security/pkg/server/ca/authenticate/kubeauth). Then:
// - a trusted node account (CA_TRUSTED_NODE_ACCOUNTS in Istio; --trusted-node-accounts here) is a node
//   agent: its token must be bound to its pod, whose node (read through the API, uid and service account
//   matching) is the node it may act for;
// - any other service account is itself, and may ask only for its own identity (node-authorizer.ts).
import { AuthenticationV1Api, type KubeConfig, type V1TokenReview } from '@kubernetes/client-node';
import { WeftError } from '../../core/errors.js';
import type { Caller, CallerAuthenticator } from '../caller.js';
import { apiUnavailable, DEFAULT_API_TIMEOUT_MS, withTimeout } from './api-call.js';
import type { ApiPodPlacement } from './pod-placement.js';

/** Istio's audience for tokens sent to its CA; ztunnel's projected token asks for it. */
export const DEFAULT_TOKEN_AUDIENCE = 'istio-ca';
/** The chart's agent account. */
export const DEFAULT_TRUSTED_NODE_ACCOUNTS: readonly string[] = ['weft-system/weft-agent'];
/**
 * Projected service-account tokens are JWTs of 1–2 KiB; this bounds what we forward to the API server
 * while leaving room for long names and extra claims.
 */
const MAX_TOKEN_CHARS = 8192;
/** A JWT: three base64url parts joined by dots. */
const JWT_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** How the API server names a service account in a TokenReview. */
const SERVICE_ACCOUNT_USER_RE = /^system:serviceaccount:([a-z0-9][-a-z0-9]*):([a-z0-9][-a-z0-9.]*)$/;
const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
const POD_UID_EXTRA = 'authentication.kubernetes.io/pod-uid';
/** The API server's reason for refusing a token goes back to the caller, cut to a sane length. */
const MAX_REASON_CHARS = 200;

export interface TokenReviewAuthenticatorOptions {
  readonly kubeConfig: KubeConfig;
  readonly audience: string;
  /** `namespace/serviceaccount` of the node agents, which may act for the pods on their node. */
  readonly trustedNodeAccounts: readonly string[];
  /** Reads the node agents' pods. */
  readonly pods: ApiPodPlacement;
  readonly timeoutMs?: number;
}

export class TokenReviewAuthenticator implements CallerAuthenticator {
  readonly #api: AuthenticationV1Api;
  readonly #audience: string;
  readonly #trusted: ReadonlySet<string>;
  readonly #pods: ApiPodPlacement;
  readonly #timeoutMs: number;

  constructor(options: TokenReviewAuthenticatorOptions) {
    this.#api = options.kubeConfig.makeApiClient(AuthenticationV1Api);
    this.#audience = options.audience;
    this.#trusted = new Set(options.trustedNodeAccounts);
    this.#pods = options.pods;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS;
  }

  async authenticate(bearerToken: string | undefined, peer: string): Promise<Caller> {
    const refuse = (why: string): never => {
      throw new WeftError('ERR_UNAUTHENTICATED', why, { peer });
    };
    if (bearerToken === undefined || bearerToken === '')
      return refuse(
        `no bearer token: send "authorization: Bearer <service-account token for audience ${this.#audience}>"`,
      );
    if (bearerToken.length > MAX_TOKEN_CHARS) return refuse('bearer token too long');
    if (!JWT_RE.test(bearerToken)) return refuse('bearer token is not a JWT');

    let review: V1TokenReview;
    try {
      review = await this.#api.createTokenReview(
        {
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token: bearerToken, audiences: [this.#audience] },
          },
        },
        withTimeout(this.#timeoutMs),
      );
    } catch (err) {
      throw apiUnavailable('review the bearer token', err, peer);
    }
    const status = review.status;
    if (status?.authenticated !== true)
      return refuse(`token rejected: ${(status?.error ?? 'not authenticated').slice(0, MAX_REASON_CHARS)}`);
    // An API server that ignored the audience would answer for a token meant for someone else.
    if (!(status.audiences ?? []).includes(this.#audience))
      return refuse(`token is not for audience ${this.#audience}`);
    const username = status.user?.username ?? '';
    const account = SERVICE_ACCOUNT_USER_RE.exec(username);
    if (account === null) return refuse(`${username.slice(0, MAX_REASON_CHARS)} is not a service account`);
    const [, namespace = '', serviceAccount = ''] = account;
    if (!this.#trusted.has(`${namespace}/${serviceAccount}`))
      return { kind: 'service-account', namespace, serviceAccount };

    // A node agent: the pod its token is bound to says which node it speaks for.
    const podName = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
    const podUid = status.user?.extra?.[POD_UID_EXTRA]?.[0];
    if (podName === undefined || podUid === undefined)
      return refuse(
        `node agent ${namespace}/${serviceAccount} must send a token bound to its pod (a projected service-account token)`,
      );
    const nodeName = await this.#pods.nodeOfCaller({ namespace, name: podName, uid: podUid, serviceAccount });
    return { kind: 'node', nodeName, account: `${namespace}/${serviceAccount}` };
  }
}
