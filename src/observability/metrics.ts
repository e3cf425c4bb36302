/**
 * Prometheus metrics (SPEC 6) through prom-client: every `protokv_*` metric, plus prom-client's
 * standard process and Node.js metrics. The hot paths count in plain numbers (`Figures`); each
 * metric reads its numbers when scraped, in a `collect` callback, so a request costs no
 * metrics-library call at all. Labels come only from bounded sets (commands, statuses,
 * transports, reasons), never from table names or keys.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PubSub } from '../service/pubsub.js';
import type { Store } from '../storage/store.js';
import {
  COMMAND_LABELS,
  REJECT_REASONS,
  STATUS_LABELS,
  TRANSPORTS,
  type BucketCounts,
  type Figures,
} from './instrumentation.js';

/** What the metrics read. */
export interface MetricsSources {
  figures: Figures;
  pubsub: PubSub;
  store: Store;
}

/** The registry behind `/metrics`: `contentType` and `metrics()` give the exposition. */
export type MetricsRegistry = Registry;

/** Builds a registry (not the global one) exposing `sources`. */
export function createMetricsRegistry({ figures, pubsub, store }: MetricsSources): MetricsRegistry {
  const registers = [new Registry()];
  const [registry] = registers;

  const commandStatus = COMMAND_LABELS.flatMap((command) => STATUS_LABELS.map((status) => ({ command, status })));
  new Counter({
    name: 'protokv_commands_total',
    help: 'Requests answered, by command and response status',
    labelNames: ['command', 'status'],
    registers,
    collect() {
      this.reset();
      // Only the pairs that occurred: most commands never see most statuses.
      commandStatus.forEach((labels, i) => {
        if (figures.commands[i] > 0) this.inc(labels, figures.commands[i]);
      });
    },
  });
  new PrecountedHistogram({
    name: 'protokv_command_duration_seconds',
    help: 'Time from a request being decoded to its response being written to the connection, by command',
    labelNames: ['command'],
    registers,
    counts: figures.durations,
    series: COMMAND_LABELS.map((command) => ({ command })),
  });

  const transports = TRANSPORTS.map((transport) => ({ transport }));
  new Gauge({
    name: 'protokv_connections',
    help: 'Connections open now, by transport (yamux: streams open inside yamux sessions)',
    labelNames: ['transport'],
    registers,
    collect() {
      transports.forEach((labels, i) => this.set(labels, figures.connections[i]));
    },
  });
  new Counter({
    name: 'protokv_connections_total',
    help: 'Connections accepted since start, by transport (yamux: streams opened)',
    labelNames: ['transport'],
    registers,
    collect() {
      this.reset();
      transports.forEach((labels, i) => this.inc(labels, figures.connectionsTotal[i]));
    },
  });
  const reasons = REJECT_REASONS.map((reason) => ({ reason }));
  new Counter({
    name: 'protokv_connections_rejected_total',
    help: 'Connections refused, by reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      reasons.forEach((labels, i) => this.inc(labels, figures.rejected[i]));
    },
  });

  plainCounter(registers, 'protokv_bytes_received_total', 'Bytes of protokv frames received (after TLS, inside yamux)', () => figures.bytesReceived);
  plainCounter(registers, 'protokv_bytes_sent_total', 'Bytes of protokv frames sent (after TLS, inside yamux)', () => figures.bytesSent);
  new Gauge({
    name: 'protokv_subscriptions',
    help: 'Subscriptions open now',
    registers,
    collect() {
      this.set(pubsub.size);
    },
  });
  plainCounter(registers, 'protokv_published_messages_total', 'Messages published (PUBLISH requests), with or without subscribers', () => pubsub.published);
  plainCounter(registers, 'protokv_delivered_messages_total', 'Published messages queued to subscribers: one per subscriber reached', () => pubsub.delivered);
  plainCounter(
    registers,
    'protokv_subscribers_dropped_total',
    'Subscribers disconnected because their backlog of unsent messages passed its limit',
    () => figures.subscribersDropped,
  );
  new PrecountedHistogram({
    name: 'protokv_store_commit_duration_seconds',
    help: 'Persistent-store commits: from the first write of a commit being queued to the commit being durable on disk',
    labelNames: [],
    registers,
    counts: figures.commits,
    series: [{}],
  });
  if (store.keyCount !== undefined) {
    const keyCount = store.keyCount.bind(store);
    new Gauge({
      name: 'protokv_store_keys',
      help: 'Keys in the store, over every table',
      registers,
      async collect() {
        this.set(await keyCount());
      },
    });
  }

  collectDefaultMetrics({ register: registry });
  return registry;
}

function plainCounter(registers: Registry[], name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

interface PrecountedHistogramConfiguration {
  name: string;
  help: string;
  labelNames: string[];
  registers: Registry[];
  counts: BucketCounts;
  /** The labels of each series of `counts`, by series index. */
  series: Record<string, string>[];
}

/**
 * A prom-client histogram whose buckets are counted elsewhere, in plain numbers (`BucketCounts`),
 * and read when scraped. prom-client's own `observe` hashes the labels on every call — about 0.5 µs,
 * too much for once per request — and offers no way to add counts in bulk, so this histogram
 * answers `get` itself, in the shape prom-client's registry exposes. Series never observed are left out.
 */
class PrecountedHistogram extends Histogram<string> {
  readonly #name: string;
  readonly #help: string;
  readonly #counts: BucketCounts;
  readonly #series: Record<string, string>[];

  constructor(config: PrecountedHistogramConfiguration) {
    super({ name: config.name, help: config.help, labelNames: config.labelNames, registers: config.registers, buckets: [...config.counts.bounds] });
    this.#name = config.name;
    this.#help = config.help;
    this.#counts = config.counts;
    this.#series = config.series;
  }

  override get(): ReturnType<Histogram<string>['get']> {
    const name = this.#name;
    const bounds = this.#counts.bounds;
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    this.#series.forEach((labels, series) => {
      const cumulative = this.#counts.cumulative(series);
      const count = cumulative[cumulative.length - 1];
      if (count === 0) return;
      bounds.forEach((le, b) => values.push({ labels: { ...labels, le }, value: cumulative[b], metricName: `${name}_bucket` }));
      values.push({ labels: { ...labels, le: '+Inf' }, value: count, metricName: `${name}_bucket` });
      values.push({ labels, value: this.#counts.sums[series], metricName: `${name}_sum` });
      values.push({ labels, value: count, metricName: `${name}_count` });
    });
    const metric = { name, help: this.#help, type: 'histogram', values, aggregator: 'sum', collect: () => {} };
    // prom-client's typings declare `type` as a numeric enum; its registry (like its own histograms) uses the name.
    return Promise.resolve(metric as unknown as Awaited<ReturnType<Histogram<string>['get']>>);
  }

  /** The registry renders from this when present; the base class's would read prom-client's own (empty) buckets. */
  getForPromString(): ReturnType<Histogram<string>['get']> {
    return this.get();
  }
}
