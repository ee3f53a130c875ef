// One HTTP request through the waypoint, in Envoy's order: framing checks, path normalization, L7
// AuthorizationPolicy (on the normalized path, before any rewrite), the HTTPRoute plan, then the
// backend request(s) with the rule's timeouts, retries and mirrors, and the response back with its
// header edits and trailers. Every way out of here produces one RequestOutcome for telemetry.
//
// Invariants:
// - Nothing is sent upstream before policy allowed the request and the route chose where it goes.
// - A response is sent exactly once; after its head is out, a failure resets the stream instead.
// - A request body is held in memory only up to MAX_REPLAY_BODY_BYTES (for retries and mirrors); a
//   larger one streams through once: no retries, no mirrors for it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { Readable, Transform } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { ConfigStore } from '../../core/store.js';
import type { Service, ServicePort } from '../../core/model/service.js';
import { errorMessage } from '../../core/errors.js';
import { checkRequestFraming } from '../http/framing.js';
import { normalizeRequestTarget } from '../http/normalize.js';
import {
  RBAC_DENIED_BODY,
  RBAC_DENIED_STATUS,
  evaluateRequest,
  type NamespacedName,
  type WaypointPolicyCache,
  type WaypointVerdict,
} from '../authz/index.js';
import {
  applyHeaderEdits,
  planRequest,
  type HeaderEdit,
  type MirrorTarget,
  type RandomSource,
  type RequestPlan,
  type RetryPolicy,
  type RoutingTable,
} from '../routing/index.js';
import type { Tunnel } from '../tunnel/hbone-server.js';
import { declaredProtocol } from '../tunnel/protocol.js';
import type { Endpoint } from '../forward/connector.js';
import type { UpstreamClients } from '../forward/upstream-clients.js';
import { AttemptError, exchange, type BackendProtocol, type UpstreamResponse } from '../forward/exchange.js';
import { requestId } from '../telemetry/trace-context.js';
import type { HttpResponseFlag, NO_RESPONSE_FLAGS } from '../telemetry/response-flags.js';
import { forwardRequestHeaders, forwardResponseHeaders, forwardTrailers } from '../forward/headers.js';

export type DownstreamRequest = IncomingMessage | Http2ServerRequest;
export type DownstreamResponse = ServerResponse | Http2ServerResponse;

/** Bodies up to this size are kept so a retry or a mirror can send them again. */
export const MAX_REPLAY_BODY_BYTES = 1024 * 1024;
/** Envoy's cap on retry back-off: ten times the base interval. */
const MAX_BACKOFF_FACTOR = 10;
/** RFC 9110 §9.2.2: methods a client may send again after a connection failed under them. */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** One of Envoy's response flags, or '-' for none. */
export type ResponseFlag = HttpResponseFlag | typeof NO_RESPONSE_FLAGS;

/** Everything telemetry needs about one finished request. */
export interface RequestOutcome {
  readonly tunnel: Tunnel;
  readonly startTime: Date;
  readonly durationMs: number;
  readonly method: string;
  /** As received. */
  readonly path: string;
  readonly protocol: 'HTTP/1.1' | 'HTTP/1.0' | 'HTTP/2';
  readonly requestProtocol: 'http' | 'grpc';
  readonly authority: string | undefined;
  readonly status: number;
  readonly grpcStatus: string | undefined;
  readonly flag: ResponseFlag;
  /** Envoy's response code details: via_upstream, route_not_found, rbac_access_denied…, … */
  readonly details: string;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly upstream: Endpoint | undefined;
  readonly upstreamMs: number | undefined;
  readonly service: Service | undefined;
  readonly route: string | undefined;
  readonly attempts: number;
  readonly requestId: string;
  readonly userAgent: string | undefined;
  readonly forwardedFor: string | undefined;
  readonly traceparent: string | undefined;
  /** The authorization decision; undefined when the request was refused before it (framing, path). */
  readonly verdict: WaypointVerdict | undefined;
  /** The normalized path policy and routing saw, without the query; undefined when it could not be. */
  readonly normalizedPath: string | undefined;
}

export interface RequestHandlerInputs {
  readonly store: ConfigStore;
  readonly waypoint: NamespacedName;
  /** The routing table for the store's current version (compiled once per version by the caller). */
  readonly routing: () => RoutingTable;
  readonly policies: WaypointPolicyCache;
  readonly clients: UpstreamClients;
  readonly log: Logger;
  readonly random?: RandomSource;
  /** Called once per request when its response has ended (or failed). */
  readonly observe: (outcome: RequestOutcome) => void;
  /** Starts the request's trace: the traceparent to forward, and the span to end with the status. */
  readonly startTrace?: (req: DownstreamRequest, tunnel: Tunnel) => RequestTrace;
}

/** A request's trace: what to send upstream as `traceparent`, and its span. */
export interface RequestTrace {
  readonly traceparent: string | undefined;
  end(status: number): void;
}

function passthroughTrace(traceparent: string | undefined): RequestTrace {
  return { traceparent, end: () => undefined };
}

/** Mutable per-request state; one object per request. */
export class Exchange {
  status = 0;
  grpcStatus: string | undefined = undefined;
  flag: ResponseFlag = '-';
  details = 'via_upstream';
  upstream: Endpoint | undefined = undefined;
  upstreamStart = 0;
  upstreamMs: number | undefined = undefined;
  service: Service | undefined = undefined;
  route: string | undefined = undefined;
  attempts = 0;
  requestBytes = 0;
  responseBytes = 0;
  finished = false;
  verdict: WaypointVerdict | undefined = undefined;
  normalizedPath: string | undefined = undefined;
  constructor(
    readonly start: number,
    readonly startTime: Date,
    readonly requestId: string,
    readonly trace: RequestTrace,
  ) {}
  get traceparent(): string | undefined {
    return this.trace.traceparent;
  }
}

/** What the waypoint answers itself. */
export interface LocalAnswer {
  readonly kind: 'local';
  readonly status: number;
  readonly body: string;
  readonly details: string;
  readonly flag: ResponseFlag;
  /** HTTP/1: close the connection after (the request's framing cannot be trusted). */
  readonly close: boolean;
  readonly headers: readonly HeaderEdit[];
}

/** Where and how a request goes upstream. */
export interface Send {
  readonly kind: 'send';
  readonly destination: Destination;
  readonly requestEdits: readonly HeaderEdit[];
  readonly responseEdits: readonly HeaderEdit[];
  /** Path and query to send. */
  readonly sendPath: string;
  /** The authority the client sent (edits may replace it). */
  readonly authority: string | undefined;
  readonly mirrors: readonly MirrorTarget[];
  readonly retry: RetryPolicy | undefined;
  readonly requestTimeoutMs: number | undefined;
  readonly tryTimeoutMs: number | undefined;
}

export type Decision = LocalAnswer | Send;

function local(
  status: number,
  body: string,
  details: string,
  flag: ResponseFlag,
  close = false,
  headers: readonly HeaderEdit[] = [],
): LocalAnswer {
  return { kind: 'local', status, body, details, flag, close, headers };
}

export type Destination = {
  readonly service: Service | undefined;
  /** Ready endpoints (each with the target port for the chosen Service port). */
  readonly endpoints: readonly Endpoint[];
  readonly protocol: BackendProtocol;
};

export class RequestHandler {
  readonly #in: RequestHandlerInputs;
  readonly #random: RandomSource;

  constructor(inputs: RequestHandlerInputs) {
    this.#in = inputs;
    this.#random = inputs.random ?? Math.random;
  }

  handle(req: DownstreamRequest, res: DownstreamResponse, tunnel: Tunnel): void {
    const ex = this.newExchange(req, tunnel);
    const done = (): void => this.#finish(req, res, tunnel, ex);
    res.once('finish', done);
    res.once('close', () => {
      if (!ex.finished && ex.status === 0) {
        ex.flag = 'DC';
        ex.details = 'downstream_remote_disconnect';
      }
      done();
    });
    req.on('error', () => undefined);
    const decision = this.decide(req, tunnel, ex);
    if (decision.kind === 'local') {
      ex.flag = decision.flag;
      return this.#local(
        res,
        ex,
        decision.status,
        decision.body,
        decision.details,
        decision.close,
        decision.headers,
      );
    }
    this.#send(req, res, ex, decision);
  }

  /** Per-request state, with the request id and trace context to forward. */
  newExchange(req: DownstreamRequest, tunnel: Tunnel): Exchange {
    const trace = this.#in.startTrace?.(req, tunnel) ?? passthroughTrace(header(req, 'traceparent'));
    return new Exchange(performance.now(), new Date(), requestId(req.headers['x-request-id']), trace);
  }

  /** Everything up to the first byte upstream: framing, normalization, policy, route, destination. */
  decide(req: DownstreamRequest, tunnel: Tunnel, ex: Exchange): Decision {
    const h2 = req.httpVersionMajor === 2;
    const framing = checkRequestFraming({
      protocol: h2 ? 'h2' : 'http/1',
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
      authority: h2 ? header(req, ':authority') : undefined,
      method: req.method,
    });
    if (!framing.ok) return local(framing.status, framing.reason, 'request_framing_invalid', '-', !h2);
    const target = normalizeRequestTarget(req.url ?? '');
    if (!target.ok) return local(target.status, target.reason, 'path_normalization_failed', '-', !h2);
    ex.normalizedPath = target.path;
    const authority = h2 ? (header(req, ':authority') ?? header(req, 'host')) : header(req, 'host');
    const dialled = tunnel.target.dialled;
    ex.service = tunnel.target.kind === 'service' ? tunnel.target.service : undefined;

    // L7 policy on the normalized request, before routing can rewrite it (authz.md §6).
    const compiled = this.#in.policies.get({
      waypoint: this.#in.waypoint,
      service: ex.service && { namespace: ex.service.namespace, name: ex.service.name },
    });
    const verdict = evaluateRequest(compiled, {
      srcIp: tunnel.source.ip,
      srcIdentity: tunnel.peer,
      dstIp: dialled.ip,
      dstPort: dialled.port,
      method: req.method ?? '',
      path: target.path,
      query: target.query,
      host: authority,
      rawHeaders: req.rawHeaders,
      sni: undefined,
    });
    ex.verdict = verdict;
    if (!verdict.allowed) {
      this.#in.log.info(
        {
          'src.identity': tunnel.peerId,
          path: target.path,
          policy: verdict.responseDetails,
          request_id: ex.requestId,
        },
        'request denied by policy',
      );
      return local(
        RBAC_DENIED_STATUS,
        RBAC_DENIED_BODY,
        verdict.responseDetails ?? 'rbac_access_denied',
        '-',
      );
    }

    const headers = h2 && authority !== undefined ? { ...req.headers, host: authority } : req.headers;
    const plan = planRequest(
      this.#in.routing(),
      {
        dialled,
        clientNamespace: tunnel.peer.namespace,
        method: req.method ?? '',
        path: target.path,
        query: target.query,
        headers,
      },
      { random: this.#random },
    );
    return this.#destination(tunnel, ex, plan, target.path, target.query, authority, h2);
  }

  #destination(
    tunnel: Tunnel,
    ex: Exchange,
    plan: RequestPlan,
    path: string,
    query: string,
    authority: string | undefined,
    h2: boolean,
  ): Decision {
    if (plan.kind === 'respond') {
      ex.route = plan.selection?.rule.id;
      const headers = plan.edits ? [...plan.headers, ...plan.edits.responseHeaders] : plan.headers;
      const flag: ResponseFlag =
        plan.cause === 'not-found' ? 'NR' : plan.cause === 'no-ready-endpoints' ? 'UH' : '-';
      const details =
        plan.cause === 'not-found'
          ? 'route_not_found'
          : plan.cause === 'redirect'
            ? 'redirect'
            : plan.cause === 'cors-preflight'
              ? 'cors_preflight'
              : plan.cause === 'no-ready-endpoints'
                ? 'no_healthy_upstream'
                : 'invalid_backend';
      return local(plan.status, plan.cause === 'redirect' ? '' : plan.message, details, flag, false, headers);
    }
    const downstreamProtocol: BackendProtocol = h2 ? 'h2' : 'http1';
    let send: Send;
    if (plan.kind === 'passthrough') {
      send = {
        kind: 'send',
        destination: this.#passthroughDestination(tunnel, downstreamProtocol),
        requestEdits: [],
        responseEdits: [],
        sendPath: path + query,
        authority,
        mirrors: [],
        retry: undefined,
        requestTimeoutMs: undefined,
        tryTimeoutMs: undefined,
      };
    } else {
      ex.route = plan.selection.rule.id;
      const { service, port } = plan.backend.backend;
      send = {
        kind: 'send',
        destination: {
          service,
          endpoints: endpointsOf(this.#in.store, service, port),
          protocol: backendProtocol(port, downstreamProtocol),
        },
        requestEdits: plan.edits.requestHeaders,
        responseEdits: plan.edits.responseHeaders,
        sendPath: (plan.edits.path ?? path) + query,
        authority,
        mirrors: plan.edits.mirrors,
        retry: plan.policy.retry,
        requestTimeoutMs: plan.policy.requestTimeoutMs,
        tryTimeoutMs: plan.policy.backendRequestTimeoutMs,
      };
    }
    ex.service = send.destination.service ?? ex.service;
    if (send.destination.endpoints.length === 0)
      return local(503, 'no healthy upstream', 'no_healthy_upstream', 'UH');
    return send;
  }

  /**
   * The headers to send upstream for `req` under `send`: the client's minus hop-by-hop, the rule's
   * edits, the request id and trace context. Returns them with the authority to send.
   */
  upstreamHeaders(
    req: DownstreamRequest,
    send: Send,
    ex: Exchange,
    keepUpgrade = false,
  ): { headers: Record<string, string | string[]>; authority: string } {
    let forwarded = forwardRequestHeaders(req.headers, req.rawHeaders, keepUpgrade);
    if (send.authority !== undefined) forwarded.host = send.authority;
    if (send.requestEdits.length > 0)
      forwarded = applyHeaderEdits(forwarded, send.requestEdits) as Record<string, string | string[]>;
    const authority = typeof forwarded.host === 'string' ? forwarded.host : (send.authority ?? '');
    delete forwarded.host;
    forwarded['x-request-id'] = ex.requestId;
    if (ex.traceparent !== undefined) forwarded.traceparent = ex.traceparent;
    return { headers: forwarded, authority };
  }

  #send(req: DownstreamRequest, res: DownstreamResponse, ex: Exchange, send: Send): void {
    const h2 = req.httpVersionMajor === 2;
    const { destination, mirrors, retry, requestTimeoutMs, tryTimeoutMs, responseEdits, sendPath } = send;
    const downstreamProtocol: BackendProtocol = h2 ? 'h2' : 'http1';
    const { headers: forwarded, authority: sendAuthority } = this.upstreamHeaders(req, send, ex);
    const grpc = isGrpc(req);

    void this.#readBody(req, ex, retry !== undefined || mirrors.length > 0).then(
      (body) => {
        const replayable = body === null || Buffer.isBuffer(body);
        const request = {
          method: req.method ?? 'GET',
          path: sendPath,
          authority: sendAuthority,
          headers: forwarded,
          body,
        };
        if (replayable) for (const m of mirrors) this.#mirror(m, request, downstreamProtocol);
        void this.#attempts(
          res,
          ex,
          destination,
          request,
          replayable ? retry : undefined,
          requestTimeoutMs,
          tryTimeoutMs,
        ).then((response) => {
          if (response) this.#respond(res, ex, response, responseEdits, grpc, h2);
        });
      },
      (err: unknown) => {
        ex.flag = 'DC';
        this.#local(res, ex, 400, `request body failed: ${errorMessage(err)}`, 'downstream_body_error');
      },
    );
  }

  /** No route: the request goes where the client sent it (the Service's endpoints, or the pod). */
  #passthroughDestination(tunnel: Tunnel, downstream: BackendProtocol): Destination {
    const t = tunnel.target;
    if (t.kind === 'workload')
      return {
        service: undefined,
        endpoints: [{ ip: t.dialled.ip, port: t.dialled.port, workload: t.workload }],
        protocol: downstream,
      };
    return {
      service: t.service,
      endpoints: endpointsOf(this.#in.store, t.service, t.port),
      protocol: backendProtocol(t.port, downstream),
    };
  }

  /**
   * The request body: a Buffer when it must be replayable and fits, null when there is none, otherwise
   * a stream (the client's own, or what was read so far followed by the rest).
   */
  async #readBody(
    req: DownstreamRequest,
    ex: Exchange,
    wantReplay: boolean,
  ): Promise<Buffer | Readable | null> {
    if (!hasBody(req)) return null;
    const counted = (chunk: Buffer): Buffer => {
      ex.requestBytes += chunk.length;
      return chunk;
    };
    if (!wantReplay) {
      // Counted on the way through; a 'data' listener on the request itself would start the flow
      // before the upstream request is there to take it.
      const counting = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          callback(null, counted(chunk));
        },
      });
      req.once('error', (err) => counting.destroy(err));
      (req as Readable).pipe(counting);
      return counting;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const iterator = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    for (;;) {
      const next = await iterator.next();
      if (next.done) return Buffer.concat(chunks, size);
      chunks.push(counted(next.value));
      size += next.value.length;
      if (size > MAX_REPLAY_BODY_BYTES) {
        // Too big to hold: send what we have, then the rest as it comes; no retries for this one.
        return Readable.from(
          (async function* () {
            yield* chunks;
            for (;;) {
              const more = await iterator.next();
              if (more.done) return;
              yield counted(more.value);
            }
          })(),
        );
      }
    }
  }

  /** Tries, retries and timeouts; resolves with the response to send, or undefined once answered locally. */
  async #attempts(
    res: DownstreamResponse,
    ex: Exchange,
    destination: Destination,
    request: Parameters<typeof exchange>[3],
    retry: RetryPolicy | undefined,
    requestTimeoutMs: number | undefined,
    tryTimeoutMs: number | undefined,
  ): Promise<UpstreamResponse | undefined> {
    const overall = new AbortController();
    let overallExpired = false;
    const overallTimer =
      requestTimeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            overallExpired = true;
            overall.abort();
          }, requestTimeoutMs);
    const onClientGone = (): void => overall.abort();
    res.once('close', onClientGone);
    // Besides the route's retries, one resend of a request the upstream connection dropped before any
    // answer: an HTTP/2 stream the backend refused or a session it was leaving never reached it (any
    // method), and an idempotent request with a body we still hold may be sent again (RFC 9110 §9.2.2, as
    // Go's net/http, browsers and undici do). A keep-alive connection ended by a backend or agent that
    // was shutting down races the request sent on it; this keeps that race from failing requests.
    const idempotent =
      IDEMPOTENT_METHODS.has(request.method) && (request.body === null || Buffer.isBuffer(request.body));
    let maxTries = 1 + (retry?.attempts ?? 0);
    let resent = false;
    let lastFailure: AttemptError | undefined;
    let handedOver = false;
    const tried = new Set<Endpoint>();
    ex.upstreamStart = performance.now();
    try {
      for (let attempt = 0; attempt < maxTries; attempt++) {
        if (attempt > 0 && !(resent && attempt === maxTries - 1)) {
          const wait = Math.min(retry!.backoffMs * 2 ** (attempt - 1), retry!.backoffMs * MAX_BACKOFF_FACTOR);
          await sleep(wait, overall.signal);
          if (overall.signal.aborted) break;
        }
        const ep = this.#pick(destination.endpoints, tried);
        tried.add(ep);
        ex.upstream = ep;
        ex.attempts = attempt + 1;
        const tryController = new AbortController();
        const onOverall = (): void => tryController.abort();
        overall.signal.addEventListener('abort', onOverall, { once: true });
        let tryExpired = false;
        const tryTimer =
          tryTimeoutMs === undefined
            ? undefined
            : setTimeout(() => {
                tryExpired = true;
                tryController.abort();
              }, tryTimeoutMs);
        try {
          const response = await exchange(
            this.#in.clients,
            ep,
            destination.protocol,
            request,
            tryController.signal,
          );
          const retriable = retry !== undefined && retry.codes.has(response.status) && attempt + 1 < maxTries;
          if (!retriable) {
            // The try's timer keeps running over the body: a backend that stalls mid-body is cut.
            if (tryTimer) response.body.once('close', () => clearTimeout(tryTimer));
            response.body.once('close', () => overall.signal.removeEventListener('abort', onOverall));
            if (overallTimer) response.body.once('close', () => clearTimeout(overallTimer));
            res.off('close', onClientGone);
            // Only a client gone before the answer was whole cancels the backend request (an abort
            // costs an exception object; a finished exchange has nothing to cancel).
            res.once('close', () => {
              if (!response.body.readableEnded) tryController.abort();
            });
            // Destroying an undici body emits an AbortError: whoever destroys it (the abort below, a
            // client gone before the head is forwarded) must not leave that unhandled (found by fuzzing:
            // a pipelined CONNECT made Node drop the connection while a response was on its way).
            response.body.on('error', ignore);
            if (tryController.signal.aborted) response.body.destroy();
            else
              tryController.signal.addEventListener('abort', () => response.body.destroy(), { once: true });
            handedOver = true;
            return response;
          }
          response.body.resume();
          response.body.on('error', ignore);
          clearTimeout(tryTimer);
          overall.signal.removeEventListener('abort', onOverall);
          lastFailure = new AttemptError('reset', `status ${response.status} is retriable`);
        } catch (err) {
          clearTimeout(tryTimer);
          overall.signal.removeEventListener('abort', onOverall);
          const failure = err instanceof AttemptError ? err : new AttemptError('reset', errorMessage(err));
          lastFailure = tryExpired ? new AttemptError('aborted', 'per-try timeout') : failure;
          if (overall.signal.aborted) break;
          const canRetry = retry !== undefined && (tryExpired || failure.failure !== 'aborted');
          const retriesLeft = canRetry && attempt + 1 < maxTries;
          if (
            !retriesLeft &&
            !resent &&
            !tryExpired &&
            (failure.unprocessed || (failure.failure === 'reset' && idempotent))
          ) {
            resent = true;
            maxTries = attempt + 2;
            this.#in.log.debug(
              { request_id: ex.requestId, upstream: `${ep.ip}:${ep.port}`, error: failure.message },
              'upstream connection dropped the request before answering; sending it again',
            );
            continue;
          }
          if (!canRetry) break;
        }
      }
    } finally {
      if (!handedOver && overallTimer) clearTimeout(overallTimer);
    }
    res.off('close', onClientGone);
    ex.upstreamMs = performance.now() - ex.upstreamStart;
    if (overallExpired || lastFailure?.message === 'per-try timeout') {
      ex.flag = 'UT';
      this.#local(res, ex, 504, 'upstream request timeout', 'upstream_response_timeout');
      return undefined;
    }
    if (overall.signal.aborted) return undefined; // the client went away
    const exhausted = ex.attempts > 1;
    if (lastFailure?.failure === 'connect') {
      ex.flag = exhausted ? 'URX' : 'UF';
      this.#local(
        res,
        ex,
        503,
        `upstream connect error: ${lastFailure.message}`,
        'upstream_reset_before_response_started{connection_failure}',
      );
    } else {
      ex.flag = exhausted ? 'URX' : 'UC';
      this.#local(
        res,
        ex,
        503,
        `upstream reset: ${lastFailure?.message ?? 'no response'}`,
        'upstream_reset_before_response_started{remote_reset}',
      );
    }
    return undefined;
  }

  #respond(
    res: DownstreamResponse,
    ex: Exchange,
    response: UpstreamResponse,
    responseEdits: readonly HeaderEdit[],
    grpc: boolean,
    h2: boolean,
  ): void {
    if (res.headersSent || res.destroyed) {
      response.body.destroy();
      return;
    }
    ex.upstreamMs = performance.now() - ex.upstreamStart;
    ex.status = response.status;
    let headers = forwardResponseHeaders(response.headers);
    if (responseEdits.length > 0)
      headers = applyHeaderEdits(headers, responseEdits) as Record<string, string | string[]>;
    if (grpc) ex.grpcStatus = single(response.headers['grpc-status']);
    if (h2 && grpc && ex.grpcStatus !== undefined)
      return this.#trailersOnly(res as Http2ServerResponse, response, headers);
    try {
      res.writeHead(response.status, headers);
    } catch (err) {
      response.body.destroy();
      this.#in.log.warn(
        { error: errorMessage(err), request_id: ex.requestId },
        'upstream response head not forwardable',
      );
      ex.flag = 'UC';
      res.destroy();
      return;
    }
    // Both response kinds are writable streams with the same shape; one view of them for the piping.
    const sink = res as ServerResponse;
    response.body.on('data', (chunk: Buffer) => {
      ex.responseBytes += chunk.length;
      if (!sink.write(chunk)) {
        response.body.pause();
        sink.once('drain', () => response.body.resume());
      }
    });
    let complete = false;
    const finish = (): void => {
      if (complete) return;
      complete = true;
      const trailers = forwardTrailers(response.trailers());
      if (trailers) {
        if (grpc) ex.grpcStatus = single(trailers['grpc-status']) ?? ex.grpcStatus;
        // HTTP/1.1 carries trailers only in chunked responses, which Node chose when no length was set.
        if (h2 || !('content-length' in headers)) res.addTrailers(trailers as Record<string, string>);
      }
      res.end();
    };
    response.body.once('end', finish);
    // An HTTP/2 backend may close its stream (RST_STREAM NO_ERROR after answering, as servers do that
    // reply before reading the whole request) without 'end': with trailers received, the answer is
    // complete; without, it was cut.
    const closed = (): void => {
      if (complete) return;
      if (response.trailers() !== undefined) return finish();
      complete = true;
      ex.flag = 'UC';
      res.destroy();
    };
    response.body.once('close', closed);
    // A response without body bytes (a gRPC error: head, then trailers) may have ended, and even
    // closed, while its head was on the way here: its 'end' and 'close' are already past.
    if (response.body.readableEnded) finish();
    else if (response.body.destroyed) closed();
    response.body.once('error', (err) => {
      ex.flag = 'UC';
      this.#in.log.debug(
        { error: errorMessage(err), request_id: ex.requestId },
        'upstream response body failed',
      );
      res.destroy();
    });
  }

  /**
   * A gRPC "Trailers-Only" answer (status in the response head, no messages) must reach the client as
   * one HEADERS frame that ends the stream: sent as a head and an empty end, gRPC clients read no status.
   */
  #trailersOnly(
    res: Http2ServerResponse,
    response: UpstreamResponse,
    headers: Record<string, string | string[]>,
  ): void {
    // Answered at once: the upstream stream may end with a reset rather than a clean end (a server
    // that answers before reading the request), and the status must not wait on it.
    response.body.on('error', () => undefined);
    response.body.resume();
    if (res.stream.destroyed) return;
    try {
      res.stream.respond({ ...headers, ':status': response.status }, { endStream: true });
    } catch {
      res.stream.destroy();
    }
  }

  /**
   * One endpoint, at random; a retry prefers one not tried yet (Istio's default retry host predicate,
   * previous_hosts), so a single bad pod does not take every attempt.
   */
  #pick(endpoints: readonly Endpoint[], tried: ReadonlySet<Endpoint>): Endpoint {
    const fresh = tried.size === 0 ? endpoints : endpoints.filter((e) => !tried.has(e));
    const from = fresh.length > 0 ? fresh : endpoints;
    return from[Math.floor(this.#random() * from.length)]!;
  }

  /** A copy of the request to one endpoint of `target`; its answer is read and dropped. */
  #mirror(target: MirrorTarget, request: Parameters<typeof exchange>[3], downstream: BackendProtocol): void {
    const { backend } = target;
    const endpoints = endpointsOf(this.#in.store, backend.service, backend.port);
    if (endpoints.length === 0) return;
    const ep = endpoints[Math.floor(this.#random() * endpoints.length)]!;
    // Envoy marks shadowed requests by suffixing the host with -shadow.
    const copy = { ...request, authority: shadowAuthority(request.authority) };
    const controller = new AbortController();
    exchange(this.#in.clients, ep, backendProtocol(backend.port, downstream), copy, controller.signal).then(
      (response) => {
        response.body.on('error', () => undefined);
        response.body.resume();
      },
      (err: unknown) =>
        this.#in.log.debug({ error: errorMessage(err), mirror: `${ep.ip}:${ep.port}` }, 'mirror failed'),
    );
  }

  /** Answers from the waypoint itself. */
  #local(
    res: DownstreamResponse,
    ex: Exchange,
    status: number,
    body: string,
    details: string,
    closeConnection = false,
    edits: readonly HeaderEdit[] = [],
  ): void {
    ex.details = details;
    ex.status = status;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    let headers: Record<string, string | string[]> = { 'content-type': 'text/plain' };
    if (edits.length > 0) headers = applyHeaderEdits(headers, edits) as Record<string, string | string[]>;
    if (closeConnection) headers.connection = 'close';
    const payload = Buffer.from(body);
    headers['content-length'] = String(payload.length);
    ex.responseBytes = payload.length;
    res.writeHead(status, headers);
    res.end(payload);
  }

  #finish(req: DownstreamRequest, res: DownstreamResponse, tunnel: Tunnel, ex: Exchange): void {
    if (ex.finished) return;
    ex.finished = true;
    if (ex.status === 0) ex.status = res.headersSent ? res.statusCode : 0;
    ex.trace.end(ex.status);
    this.#in.observe({
      tunnel,
      startTime: ex.startTime,
      durationMs: performance.now() - ex.start,
      method: req.method ?? '',
      path: req.url ?? '',
      protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1',
      requestProtocol: isGrpc(req) ? 'grpc' : 'http',
      authority: req.httpVersionMajor === 2 ? header(req, ':authority') : header(req, 'host'),
      status: ex.status,
      grpcStatus: ex.grpcStatus,
      flag: ex.flag,
      details: ex.details,
      requestBytes: ex.requestBytes,
      responseBytes: ex.responseBytes,
      upstream: ex.upstream,
      upstreamMs: ex.upstreamMs,
      service: ex.service,
      route: ex.route,
      attempts: ex.attempts,
      requestId: ex.requestId,
      userAgent: header(req, 'user-agent'),
      forwardedFor: header(req, 'x-forwarded-for'),
      traceparent: ex.traceparent,
      verdict: ex.verdict,
      normalizedPath: ex.normalizedPath,
    });
  }
}

/** Ready endpoints of `service` serving `port`, with their target port. */
export function endpointsOf(store: ConfigStore, service: Service, port: ServicePort): Endpoint[] {
  const out: Endpoint[] = [];
  for (const ep of store.endpointsOf(service)) {
    const targetPort = ep.targetPorts[port.port];
    if (targetPort !== undefined)
      out.push({ ip: ep.address, port: targetPort, workload: store.workloadByIp(ep.address) });
  }
  return out;
}

/** The declared protocol of the backend port wins; an undeclared one gets the client's HTTP version. */
function backendProtocol(port: ServicePort, downstream: BackendProtocol): BackendProtocol {
  const declared = declaredProtocol(port);
  return declared.kind === 'http' ? declared.backend : downstream;
}

function header(req: DownstreamRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function single(v: string | string[] | number | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : String(v);
}

function isGrpc(req: DownstreamRequest): boolean {
  const ct = header(req, 'content-type');
  return ct !== undefined && ct.startsWith('application/grpc');
}

/** Whether the request carries a body at all (so GETs are forwarded without one). */
function hasBody(req: DownstreamRequest): boolean {
  if (req.httpVersionMajor === 2) {
    const stream = (req as Http2ServerRequest).stream;
    return !stream.endAfterHeaders;
  }
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
}

function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  return colon > 0 && !authority.endsWith(']')
    ? `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`
    : `${authority}-shadow`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function ignore(): void {}
