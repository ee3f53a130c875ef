// The waypoint's spans, exported over OTLP/HTTP with the OpenTelemetry SDK. Off unless an endpoint is
// configured; off, a span costs one small object and no I/O.
//
// One SERVER span per request, child of the client's W3C context and named as Istio names route spans
// (`<host>:<port>/*`). The context sent upstream carries that span's id, so the application's spans
// nest under the waypoint's. Off, the incoming context goes upstream unchanged, as Envoy does without a
// tracing provider: a span id of ours that is never exported would orphan the application's spans.
// Attribute names are Envoy's tracing tags (`http.method`, `upstream_cluster`, ...), which Istio
// users' trace queries expect, rather than OpenTelemetry's newer `http.request.method` family.
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  createTraceState,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { WeftError, errorMessage } from '../../core/errors.js';
import { componentLogger, type Logger } from '../../core/log.js';
import type { PathMatch } from '../../core/model/route.js';
import type { TraceContext } from './trace-context.js';

/** Envoy's tracing tag names, plus the Istio ones its tracers add, for use as span attribute keys. */
export const SPAN_ATTRIBUTES = Object.freeze({
  method: 'http.method',
  /** `<scheme>://<authority><path>`, as received. */
  url: 'http.url',
  /** `HTTP/1.1`, `HTTP/2`. */
  protocol: 'http.protocol',
  statusCode: 'http.status_code',
  userAgent: 'user_agent',
  requestId: 'guid:x-request-id',
  /** The client's address. */
  peerAddress: 'peer.address',
  /** Not an Envoy tag: the client's SPIFFE ID, named after the metrics label. */
  peerIdentity: 'istio.source_principal',
  upstreamCluster: 'upstream_cluster',
  upstreamClusterName: 'upstream_cluster.name',
  upstreamAddress: 'upstream_address',
  responseFlags: 'response_flags',
  requestSize: 'request_size',
  responseSize: 'response_size',
  retryCount: 'retry.count',
  component: 'component',
  namespace: 'istio.namespace',
  canonicalService: 'istio.canonical_service',
  canonicalRevision: 'istio.canonical_revision',
  meshId: 'istio.mesh_id',
} as const);

export type SpanAttributeValue = string | number | boolean;
/** Undefined values are dropped, so callers can pass optional fields as they are. */
export type SpanAttributes = Readonly<Record<string, SpanAttributeValue | undefined>>;

/**
 * Istio's operation name for a route's spans (pilot's getRouteOperation): `<host>:<port>` followed by
 * the rule's path match: `/*` with none, `<prefix>*` for a prefix, the path for an exact match, the
 * pattern for a regex.
 */
export function spanName(host: string, port: number, path?: PathMatch): string {
  let suffix = '/*';
  if (path) {
    if (path.type === 'PathPrefix') suffix = `${path.value}*`;
    else suffix = path.value;
  }
  return `${host}:${port}${suffix}`;
}

export interface TracerConfig {
  /** The OTLP/HTTP traces URL, e.g. `http://otel-collector.observability:4318/v1/traces`; unset: off. */
  readonly otlpEndpoint?: string | undefined;
  /** The resource's `service.name`, e.g. `waypoint.default`. */
  readonly serviceName: string;
  /** More resource attributes, e.g. `k8s.namespace.name`. */
  readonly attributes?: Readonly<Record<string, string>>;
  /**
   * The share of new traces recorded: requests without a parent, whose caller made no sampling
   * decision. A parent's decision is always followed. Default 0.01, Istio's default sampling of 1%.
   */
  readonly sampleRatio?: number;
  /** How long spans wait in the batch before export; the SDK's default 5000 ms. */
  readonly batchDelayMs?: number;
  readonly logger?: Logger;
}

/** One request's span. */
export interface ServerSpan {
  /**
   * What to send upstream as `traceparent`/`tracestate`. With tracing on, our span's context; off, the
   * incoming one unchanged, or undefined when the request brought none.
   */
  readonly context: TraceContext | undefined;
  /** Whether the span is recorded (and will be exported). */
  readonly recording: boolean;
  /** Ends the span with the status sent downstream (0: none); 5xx and 0 mark it failed. Call once. */
  end(statusCode: number, attributes?: SpanAttributes): void;
}

export interface RequestTracer {
  readonly enabled: boolean;
  startServerSpan(parent: TraceContext | undefined, name: string, attributes: SpanAttributes): ServerSpan;
  /** Exports every ended span now. Never rejects: a failed export is logged, as in the background. */
  forceFlush(): Promise<void>;
  /** Flushes, then stops; later requests pass their context through as with tracing off. Never rejects. */
  shutdown(): Promise<void>;
}

const DEFAULT_SAMPLE_RATIO = 0.01;

/** Tracing off: the request's own context passes through. Shared prototype, no closures per request. */
class PassthroughSpan implements ServerSpan {
  readonly context: TraceContext | undefined;
  readonly recording = false;

  constructor(context: TraceContext | undefined) {
    this.context = context;
  }

  end(): void {}
}

const PASSTHROUGH_NO_CONTEXT = new PassthroughSpan(undefined);

const DISABLED_TRACER: RequestTracer = Object.freeze({
  enabled: false,
  startServerSpan(parent: TraceContext | undefined): ServerSpan {
    return parent === undefined ? PASSTHROUGH_NO_CONTEXT : new PassthroughSpan(parent);
  },
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
});

class SdkServerSpan implements ServerSpan {
  readonly context: TraceContext;
  readonly recording: boolean;
  readonly #span: Span;

  constructor(span: Span, parent: TraceContext | undefined) {
    this.#span = span;
    const sc = span.spanContext();
    this.recording = span.isRecording();
    this.context = {
      traceId: sc.traceId,
      spanId: sc.spanId,
      sampled: (sc.traceFlags & TraceFlags.SAMPLED) !== 0,
      // Our validated string, passed on as received: the SDK's re-serialization could reorder it.
      traceState: parent?.traceState,
    };
  }

  end(statusCode: number, attributes?: SpanAttributes): void {
    if (!this.recording) return;
    const span = this.#span;
    span.setAttribute(SPAN_ATTRIBUTES.statusCode, statusCode);
    if (attributes) span.setAttributes(attributes);
    // OpenTelemetry's rule for server spans: 5xx is the server's failure, 4xx the client's. No response
    // at all (0) means the exchange failed.
    if (statusCode >= 500 || statusCode === 0) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }
}

/** Parent context for the SDK: the client's span, marked remote. */
function remoteParent(parent: TraceContext): Context {
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
    isRemote: true,
    traceState: parent.traceState === undefined ? undefined : createTraceState(parent.traceState),
  });
}

/**
 * Reports failed exports to our log. The SDK sends them to its global error handler, which is silent
 * unless an OpenTelemetry diag logger is installed process-wide (which we do not do).
 */
class LoggingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #log: Logger;
  readonly #endpoint: string;
  // Errors already logged here, so a flush that rejects with the same error does not log it twice.
  readonly #reported = new WeakSet<object>();

  constructor(inner: SpanExporter, log: Logger, endpoint: string) {
    this.#inner = inner;
    this.#log = log;
    this.#endpoint = endpoint;
  }

  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    this.#inner.export(spans, (result) => {
      // ExportResultCode.SUCCESS is 0 (@opentelemetry/core, which we do not import directly).
      if (result.code !== 0) {
        if (result.error) this.#reported.add(result.error);
        this.#log.warn(
          { endpoint: this.#endpoint, spans: spans.length, error: result.error?.message },
          'trace export failed',
        );
      }
      done(result);
    });
  }

  /** Logs what a flush or shutdown rejected with (an error or the provider's array of them), once. */
  flushFailed(err: unknown): void {
    for (const e of Array.isArray(err) ? (err as unknown[]) : [err]) {
      if (typeof e === 'object' && e !== null && this.#reported.has(e)) continue;
      this.#log.warn({ endpoint: this.#endpoint, error: errorMessage(e) }, 'trace flush failed');
    }
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

class SdkTracer implements RequestTracer {
  readonly enabled = true;
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  readonly #exporter: LoggingExporter;
  // After shutdown the SDK would still make recording spans and then drop them; we pass through instead.
  #closed = false;

  constructor(endpoint: string, config: TracerConfig) {
    const log = config.logger ?? componentLogger('proxy.telemetry');
    this.#exporter = new LoggingExporter(new OTLPTraceExporter({ url: endpoint }), log, endpoint);
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ ...config.attributes, [ATTR_SERVICE_NAME]: config.serviceName }),
      sampler: new ParentBasedSampler({
        root: new TraceIdRatioBasedSampler(config.sampleRatio ?? DEFAULT_SAMPLE_RATIO),
      }),
      spanProcessors: [
        new BatchSpanProcessor(
          this.#exporter,
          config.batchDelayMs === undefined ? {} : { scheduledDelayMillis: config.batchDelayMs },
        ),
      ],
    });
    this.#tracer = this.#provider.getTracer('weft-waypoint');
  }

  startServerSpan(parent: TraceContext | undefined, name: string, attributes: SpanAttributes): ServerSpan {
    if (this.#closed) return DISABLED_TRACER.startServerSpan(parent, name, attributes);
    const span = this.#tracer.startSpan(
      name,
      { kind: SpanKind.SERVER, attributes },
      parent === undefined ? ROOT_CONTEXT : remoteParent(parent),
    );
    return new SdkServerSpan(span, parent);
  }

  async forceFlush(): Promise<void> {
    try {
      await this.#provider.forceFlush();
    } catch (err) {
      this.#exporter.flushFailed(err);
    }
  }

  async shutdown(): Promise<void> {
    this.#closed = true;
    try {
      await this.#provider.shutdown();
    } catch (err) {
      this.#exporter.flushFailed(err);
    }
  }
}

/** A tracer exporting to `config.otlpEndpoint`, or the passthrough one when it is unset or empty. */
export function createTracer(config: TracerConfig): RequestTracer {
  const endpoint = config.otlpEndpoint;
  if (endpoint === undefined || endpoint === '') return DISABLED_TRACER;
  const invalid = (why: string, cause?: unknown): WeftError =>
    new WeftError(
      'ERR_CONFIG_INVALID',
      `tracing: otlpEndpoint ${JSON.stringify(endpoint)} ${why}`,
      { field: 'otlpEndpoint' },
      cause,
    );
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (err) {
    throw invalid('is not a URL', err);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('must be http:// or https://');
  return new SdkTracer(endpoint, config);
}
