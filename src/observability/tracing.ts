/**
 * Tracing (SPEC 7) through the OpenTelemetry JS SDK, exported over OTLP/HTTP (protobuf or JSON).
 * This module is imported only when tracing is on (`import()` in `startTracing`'s caller), so a
 * server without tracing never loads the SDK.
 *
 * Each sampled request is one SERVER span named after its command, from the request being
 * decoded to its response being written, with the database semantic conventions; each commit of
 * the persistent store that acknowledged sampled requests is one span of its own, linked to them.
 *
 * Sampling is decided here, before any span exists, by counting down a geometrically distributed
 * gap between sampled requests: an unsampled request costs a decrement, not a trace id, a
 * sampler call and a non-recording span. The SDK's own sampler is therefore "always on".
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { CommandRequest, CommandResponse } from '../protocol/generated/abi.js';
import type { TracingConfig } from '../config.js';
import type { RequestTracer, StreamOrigin, TracedRequest } from './instrumentation.js';

/** Longest attribute value exported (table names and topics may be long). */
const MAX_ATTRIBUTE_LENGTH = 256;
/** Most links a commit span carries; the rest are counted in `protokv.commit.traced`. */
const MAX_COMMIT_LINKS = 128;
/** Shutdown gives the exporter this long to send what is buffered. */
const SHUTDOWN_TIMEOUT_MS = 5_000;

export interface TracingOptions extends TracingConfig {
  /** `service.version` of the exported resource. */
  serviceVersion?: string;
}

/** Starts exporting; the returned tracer is what the instrumentation calls. */
export function startTracing(options: TracingOptions): RequestTracer {
  const exporter = options.protocol === 'http/json' ? new JsonExporter({ url: options.endpoint }) : new ProtobufExporter({ url: options.endpoint });
  const resource = defaultResource()
    .merge(detectResources({ detectors: [envDetector] }))
    .merge(
      resourceFromAttributes({
        'service.name': options.serviceName,
        ...(options.serviceVersion === undefined ? {} : { 'service.version': options.serviceVersion }),
      }),
    );
  const provider = new BasicTracerProvider({
    resource,
    sampler: new AlwaysOnSampler(),
    spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE_LENGTH, linkCountLimit: MAX_COMMIT_LINKS },
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  return new OtelRequestTracer(provider, options.sampleRatio);
}

class OtelRequestTracer implements RequestTracer {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  readonly #ratio: number;
  /** Requests left before the next sampled one. */
  #countdown: number;

  constructor(provider: BasicTracerProvider, ratio: number) {
    this.#provider = provider;
    this.#tracer = provider.getTracer('protokv');
    this.#ratio = ratio;
    this.#countdown = this.#gap();
  }

  sample(): boolean {
    if (--this.#countdown > 0) return false;
    this.#countdown = this.#gap();
    return true;
  }

  start(request: CommandRequest, command: string, origin: StreamOrigin, startedAt: number): TracedRequest {
    const attributes: Attributes = {
      'db.system.name': 'protokv',
      'db.operation.name': command,
      'network.transport': origin.transport,
      'server.port': origin.port,
    };
    const collection = collectionOf(request);
    if (collection !== undefined) attributes['db.collection.name'] = collection;
    const span = this.#tracer.startSpan(command, { kind: SpanKind.SERVER, startTime: startedAt, attributes }, ROOT_CONTEXT);
    return new TracedSpan(span);
  }

  commit(startedAt: number, endedAt: number, writes: number, traced: TracedRequest[], failed: boolean): void {
    const links: Link[] = [];
    for (const request of traced) {
      if (request instanceof TracedSpan && links.length < MAX_COMMIT_LINKS) links.push({ context: request.span.spanContext() });
    }
    const span = this.#tracer.startSpan(
      'COMMIT',
      {
        kind: SpanKind.INTERNAL,
        startTime: startedAt,
        links,
        attributes: {
          'db.system.name': 'protokv',
          'db.operation.name': 'COMMIT',
          'protokv.store': 'lmdb',
          'protokv.commit.writes': writes,
          'protokv.commit.traced': traced.length,
        },
      },
      ROOT_CONTEXT,
    );
    if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: 'commit failed' });
    span.end(endedAt);
  }

  async shutdown(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_TIMEOUT_MS)));
    try {
      await Promise.race([this.#provider.shutdown(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Requests until the next sampled one: geometric with mean 1/ratio (1 at ratio 1, never at 0). */
  #gap(): number {
    const ratio = this.#ratio;
    if (ratio >= 1) return 1;
    if (ratio <= 0) return Infinity;
    return Math.floor(Math.log(1 - Math.random()) / Math.log(1 - ratio)) + 1;
  }
}

/** A sampled request's span. */
class TracedSpan implements TracedRequest {
  readonly span: Span;

  constructor(span: Span) {
    this.span = span;
  }

  finish(response: CommandResponse, endedAt: number): void {
    const span = this.span;
    span.setAttribute('protokv.status', response.status);
    if (response.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: response.message });
    span.end(endedAt);
  }
}

/** The table or topic a request names, if any. */
function collectionOf(request: CommandRequest): string | undefined {
  const args = request.requestData?.value as { table?: unknown; topic?: unknown } | undefined;
  if (typeof args?.table === 'string') return args.table;
  if (typeof args?.topic === 'string') return args.topic;
  return undefined;
}
