// Who is calling the CA, as an authenticator establishes it. Two kinds, as in Istio's CA server:
// a node agent acting for the pods on its node (it names the identity in ImpersonatedIdentity), or a
// workload's own service account asking for its own identity (a waypoint).

/** A node agent: may obtain the identities of pods scheduled on `nodeName`. */
export interface NodeCaller {
  readonly kind: 'node';
  readonly nodeName: string;
  /** `namespace/serviceaccount` of the agent, when it authenticated with a Kubernetes token. */
  readonly account?: string;
}

/** Any other service account: may obtain only `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. */
export interface ServiceAccountCaller {
  readonly kind: 'service-account';
  readonly namespace: string;
  readonly serviceAccount: string;
}

export type Caller = NodeCaller | ServiceAccountCaller;

/**
 * Authenticates a caller from its bearer token. Rejects with ERR_UNAUTHENTICATED for a missing, bad or
 * expired token, and with ERR_CA_UNAVAILABLE when it cannot tell (the API server does not answer): an
 * authenticator never lets a caller in because it could not check.
 */
export interface CallerAuthenticator {
  authenticate(bearerToken: string | undefined, peer: string): Promise<Caller>;
}

/** `node node-1` or `serviceaccount shop/web`, for messages and logs. */
export function describeCaller(caller: Caller): string {
  return caller.kind === 'node'
    ? `node ${caller.nodeName}`
    : `serviceaccount ${caller.namespace}/${caller.serviceAccount}`;
}
