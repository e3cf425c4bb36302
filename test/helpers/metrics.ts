/** Instrumented servers for metrics and tracing tests, and a reader of the Prometheus text format. */
import { HttpListener } from '../../src/http/listener.js';
import { addMetricsRoute } from '../../src/http/metrics-route.js';
import { Figures, Instrumentation, type RequestTracer } from '../../src/observability/instrumentation.js';
import { createMetricsRegistry } from '../../src/observability/metrics.js';
import { MemoryStore } from '../../src/storage/memory.js';
import type { CommitObserver, Store } from '../../src/storage/store.js';
import { Service } from '../../src/service/service.js';
import { silentLogger } from '../../src/logger.js';
import type { ServerOptions } from '../../src/transport/server.js';
import type { ConnectOptions } from '../../src/client/client.js';
import { startServer, type Running } from './server.js';
import { get } from './http.js';

/** One sample of the exposition: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (comments skipped). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1], labels, value: match[3] === '+Inf' ? Infinity : Number(match[3]) });
  }
  return samples;
}

/** The value of the sample `name` whose labels include `labels`; `undefined` when there is none. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

export interface InstrumentedServer extends Running {
  instrumentation: Instrumentation;
  /** Base URL of its HTTP listener. */
  http: string;
  /** Scrapes `/metrics` over HTTP. */
  scrape(): Promise<Sample[]>;
}

/** A protokv server (real sockets) with metrics, its `/metrics` on an HTTP listener, and optionally a tracer. */
export async function startInstrumentedServer(
  options: Partial<ServerOptions> & {
    /** Makes the store, given the observer a persistent store reports its commits to. */
    store?: (observer: CommitObserver) => Store;
    tracer?: RequestTracer;
    /** Without metrics (tracing only). */
    noMetrics?: boolean;
  } = {},
  clientOptions: Partial<ConnectOptions> = {},
): Promise<InstrumentedServer> {
  const instrumentation = new Instrumentation({ figures: options.noMetrics ? null : new Figures(), tracer: options.tracer ?? null });
  const store = options.store?.(instrumentation) ?? new MemoryStore();
  const service = new Service({ store, instrumentation, logger: silentLogger() });
  const { store: _makeStore, tracer: _tracer, noMetrics: _noMetrics, ...serverOptions } = options;
  const running = await startServer({ ...serverOptions, service }, clientOptions);
  const listener = await HttpListener.listen({ host: '127.0.0.1', port: 0, logger: silentLogger() });
  if (instrumentation.figures) addMetricsRoute(listener, createMetricsRegistry({ figures: instrumentation.figures, pubsub: service.pubsub, store }));
  const http = `http://127.0.0.1:${listener.address().port}`;
  return {
    ...running,
    instrumentation,
    http,
    scrape: async () => parseExposition((await get(http, '/metrics')).body),
    close: async () => {
      await running.close();
      await listener.close();
    },
  };
}
