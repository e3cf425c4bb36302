/**
 * What transports, the service and the store report about their work, for metrics (SPEC 6) and
 * tracing (SPEC 7). This module loads neither prom-client nor OpenTelemetry: it only counts, in
 * plain numbers, and hands sampled requests to a {@link RequestTracer} when tracing is on.
 * Metrics read the numbers when scraped (`metrics.ts`); nothing per request goes through a
 * metrics library.
 *
 * When metrics and tracing are both off there is no instrumentation at all: callers hold `null`
 * and pay one null check.
 *
 * **Contract for a transport** (the stream server, and any other listener that feeds the service):
 * - per connection: `connectionOpened(transport)` once accepted, `connectionClosed(transport)` once
 *   closed, or `connectionRejected(reason)` for one refused;
 * - per stream: `service.contextFor(stream, origin, maxFrameSize)` gives a context whose `instrumentation` is the
 *   stream's {@link StreamInstrumentation} (or `null`); call its `received(bytes)` for every chunk
 *   read, before executing the requests decoded from it, and `written(bytes)` each time a write
 *   completes (responses leave in request order, so every request answered by then has been
 *   written);
 * - `subscriberDropped()` when a subscriber is disconnected for falling behind.
 * The service does the rest: `execute` reports each request and its response.
 */
import type { CommandRequest, CommandResponse } from '../protocol/generated/abi.js';
import { requests } from '../protocol/requests.js';
import type { CommitObserver } from '../storage/store.js';
import type { TracingConfig } from '../config.js';

/** The transports a stream can arrive on (the `transport` label, the `network.transport` attribute). */
export const TRANSPORTS = ['tcp', 'tls', 'yamux', 'websocket', 'resp'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

/** Why a connection was refused (the `reason` label). */
export const REJECT_REASONS = ['max_connections', 'shutting_down', 'tls_handshake', 'origin'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Command labels: every command of the protocol, upper case, and `INVALID` for a request naming none. */
export const COMMAND_LABELS: readonly string[] = [...Object.keys(requests).map((c) => c.toUpperCase()), 'INVALID'];
const INVALID_COMMAND = COMMAND_LABELS.length - 1;
const COMMAND_INDEX = new Map(Object.keys(requests).map((c, i) => [c, i]));

/** Status labels: the statuses of SPEC 1.4, and `other` for anything a hook made up. */
export const STATUS_LABELS: readonly string[] = ['200', '400', '404', '413', '500', '503', 'other'];
const STATUS_INDEX = new Map(STATUS_LABELS.slice(0, -1).map((s, i) => [Number(s), i]));
const OTHER_STATUS = STATUS_LABELS.length - 1;

/** Upper bounds (seconds) of the request-duration histogram: 50 µs to 10 s. */
export const DURATION_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Upper bounds (seconds) of the store-commit histogram: 100 µs to 10 s. */
export const COMMIT_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Most requests a stream's instrumentation keeps waiting for their write. Past it, answered ones
 * are finished at once (timed a little short): a client that never reads, or RESP's CLIENT REPLY
 * OFF, must not make the queue grow without bound.
 */
const MAX_QUEUED = 256;

/** Where a stream's requests arrive: its transport and the listener's port. Make one per listener, not per stream. */
export interface StreamOrigin {
  readonly transport: TransportName;
  readonly port: number;
}

/** A histogram kept as plain numbers: cumulative counts are computed when read. */
export class BucketCounts {
  readonly bounds: readonly number[];
  /** Per series, observations per bucket (not cumulative); the last bucket of each series is +Inf. */
  readonly counts: Float64Array;
  readonly sums: Float64Array;
  readonly #width: number;

  constructor(bounds: readonly number[], series: number) {
    this.bounds = bounds;
    this.#width = bounds.length + 1;
    this.counts = new Float64Array(series * this.#width);
    this.sums = new Float64Array(series);
  }

  observe(series: number, seconds: number): void {
    const bounds = this.bounds;
    let bucket = 0;
    // Most observations are short, so searching from the smallest bound ends soonest.
    while (bucket < bounds.length && seconds > bounds[bucket]) bucket++;
    this.counts[series * this.#width + bucket]++;
    this.sums[series] += seconds;
  }

  /** Cumulative bucket counts of `series` (the last is the total count). */
  cumulative(series: number): number[] {
    const out = new Array<number>(this.#width);
    let total = 0;
    for (let b = 0; b < this.#width; b++) out[b] = total += this.counts[series * this.#width + b];
    return out;
  }
}

/** Every figure the hot paths count, as plain numbers; `metrics.ts` exposes them. */
export class Figures {
  /** Requests answered, by command × status. */
  readonly commands = new Float64Array(COMMAND_LABELS.length * STATUS_LABELS.length);
  /** Request decoded → response written, by command. */
  readonly durations = new BucketCounts(DURATION_BUCKETS, COMMAND_LABELS.length);
  /** Connections open now, by transport. */
  readonly connections = new Float64Array(TRANSPORTS.length);
  readonly connectionsTotal = new Float64Array(TRANSPORTS.length);
  readonly rejected = new Float64Array(REJECT_REASONS.length);
  bytesReceived = 0;
  bytesSent = 0;
  subscribersDropped = 0;
  /** Store commits, first write queued → durable. */
  readonly commits = new BucketCounts(COMMIT_BUCKETS, 1);
}

/** A request chosen for tracing; its span ends when its response is written. */
export interface TracedRequest {
  /** Ends the span: the response's status, at `endedAt` (`performance.now()` time). */
  finish(response: CommandResponse, endedAt: number): void;
}

/** What tracing does with requests and commits (see `tracing.ts`, loaded only when tracing is on). */
export interface RequestTracer {
  /** Whether to trace the next request; called for every request, so it must be cheap. */
  sample(): boolean;
  /** Starts the span of a sampled request, at `startedAt` (`performance.now()` time). */
  start(request: CommandRequest, command: string, origin: StreamOrigin, startedAt: number): TracedRequest;
  /** One store commit, and the sampled requests among the writes it made durable. */
  commit(startedAt: number, endedAt: number, writes: number, traced: TracedRequest[], failed: boolean): void;
  /** Exports what is buffered and stops. */
  shutdown(): Promise<void>;
}

/**
 * The server-wide instrumentation: figures for metrics (when on) and a tracer (when on). With
 * both off, make none (see {@link createInstrumentation}).
 */
export class Instrumentation implements CommitObserver<TracedRequest | undefined> {
  /** `null` when metrics are off. */
  readonly figures: Figures | null;
  /** `null` when tracing is off. */
  readonly tracer: RequestTracer | null;
  /** The traced request whose command is running right now, so that store writes it makes can name it. */
  current: TracedRequest | undefined;

  constructor(options: { figures: Figures | null; tracer: RequestTracer | null }) {
    this.figures = options.figures;
    this.tracer = options.tracer;
  }

  /** The instrumentation of one stream arriving through `origin`. */
  stream(origin: StreamOrigin): StreamInstrumentation {
    return new StreamInstrumentation(this, origin);
  }

  connectionOpened(transport: TransportName): void {
    const figures = this.figures;
    if (figures === null) return;
    const i = TRANSPORTS.indexOf(transport);
    figures.connections[i]++;
    figures.connectionsTotal[i]++;
  }

  connectionClosed(transport: TransportName): void {
    if (this.figures !== null) this.figures.connections[TRANSPORTS.indexOf(transport)]--;
  }

  connectionRejected(reason: RejectReason): void {
    if (this.figures !== null) this.figures.rejected[REJECT_REASONS.indexOf(reason)]++;
  }

  subscriberDropped(): void {
    if (this.figures !== null) this.figures.subscribersDropped++;
  }

  // --- CommitObserver, for the persistent store ---

  queued(): TracedRequest | undefined {
    return this.current;
  }

  committed(startedAt: number, endedAt: number, writes: readonly (TracedRequest | undefined)[], failed: boolean): void {
    this.figures?.commits.observe(0, (endedAt - startedAt) / 1000);
    const tracer = this.tracer;
    if (tracer === null) return;
    const traced = writes.filter((w): w is TracedRequest => w !== undefined);
    // Commits that acknowledge no traced request are not traced: at a low sample ratio that is most of them.
    if (traced.length > 0) tracer.commit(startedAt, endedAt, writes.length, traced, failed);
  }

  /** Exports buffered spans; call once, when the server has stopped. */
  async shutdown(): Promise<void> {
    if (this.tracer === null) return;
    // Commits are reported one turn after their writes settle: let the last ones arrive.
    await new Promise((resolve) => setImmediate(resolve));
    await this.tracer.shutdown();
  }
}

/**
 * One stream's instrumentation. Requests are timed from the arrival of the chunk that completed
 * them to the completion of the write that carried their response: one clock reading per chunk
 * and one per write, however many requests they hold.
 *
 * Responses leave in request order, so requests wait in a queue (parallel arrays, reused: no
 * allocation per request) and a completed write finishes every answered request at its head.
 */
export class StreamInstrumentation {
  readonly #server: Instrumentation;
  readonly #figures: Figures | null;
  readonly #tracer: RequestTracer | null;
  readonly origin: StreamOrigin;
  /** When the chunk being handled arrived (`performance.now()`). */
  #receivedAt = 0;
  // The queue of requests not yet written: [head, tail) of the arrays; `base` is the sequence
  // number of index 0, so a sequence number stays valid while the arrays are reused.
  readonly #commands: number[] = [];
  readonly #startedAt: number[] = [];
  /** The response of each request once answered; `undefined` until then. */
  readonly #responses: (CommandResponse | undefined)[] = [];
  readonly #traced: (TracedRequest | undefined)[] = [];
  #head = 0;
  #tail = 0;
  #base = 0;

  constructor(server: Instrumentation, origin: StreamOrigin) {
    this.#server = server;
    this.#figures = server.figures;
    this.#tracer = server.tracer;
    this.origin = origin;
  }

  /** A chunk of `bytes` arrived; the requests it completes start now. */
  received(bytes: number): void {
    if (this.#figures !== null) this.#figures.bytesReceived += bytes;
    this.#receivedAt = performance.now();
  }

  /** A request is about to run; returns its sequence number for {@link answered}. */
  begin(request: CommandRequest): number {
    if (this.#tail - this.#head >= MAX_QUEUED) this.#finishAnswered(performance.now());
    const data = request.requestData;
    const command = data === undefined ? INVALID_COMMAND : (COMMAND_INDEX.get(data.$case) ?? INVALID_COMMAND);
    const i = this.#tail++;
    this.#commands[i] = command;
    this.#startedAt[i] = this.#receivedAt;
    this.#responses[i] = undefined;
    const tracer = this.#tracer;
    let traced: TracedRequest | undefined;
    if (tracer !== null && tracer.sample()) traced = tracer.start(request, COMMAND_LABELS[command], this.origin, this.#receivedAt);
    this.#traced[i] = traced;
    this.#server.current = traced;
    return this.#base + i;
  }

  /** The request's command has run (its store writes are queued); what it does next is its own. */
  dispatched(): void {
    this.#server.current = undefined;
  }

  /** Request `sequence` got `response`, which will be written after every earlier one. */
  answered(sequence: number, response: CommandResponse): void {
    const i = sequence - this.#base;
    this.#responses[i] = response;
    const figures = this.#figures;
    if (figures !== null) {
      const status = STATUS_INDEX.get(response.status) ?? OTHER_STATUS;
      figures.commands[this.#commands[i] * STATUS_LABELS.length + status]++;
    }
  }

  /** A write of `bytes` completed: every request answered so far, in order, has been written. */
  written(bytes: number): void {
    if (this.#figures !== null) this.#figures.bytesSent += bytes;
    if (this.#head === this.#tail || this.#responses[this.#head] === undefined) return;
    this.#finishAnswered(performance.now());
  }

  subscriberDropped(): void {
    this.#server.subscriberDropped();
  }

  /** Finishes the answered requests at the head of the queue, at `now`. */
  #finishAnswered(now: number): void {
    const figures = this.#figures;
    let i = this.#head;
    const tail = this.#tail;
    for (; i < tail; i++) {
      const response = this.#responses[i];
      if (response === undefined) break;
      figures?.durations.observe(this.#commands[i], (now - this.#startedAt[i]) / 1000);
      const traced = this.#traced[i];
      if (traced !== undefined) {
        traced.finish(response, now);
        this.#traced[i] = undefined;
      }
      this.#responses[i] = undefined;
    }
    if (i === tail) {
      // Everything written: start the arrays over, keeping their storage.
      this.#base += tail;
      this.#head = this.#tail = 0;
    } else if (i >= MAX_QUEUED) {
      // Under steady load the queue may never empty: move what is left to the front, so the
      // arrays do not grow with every request.
      for (const array of [this.#commands, this.#startedAt, this.#responses, this.#traced] as unknown[][]) array.copyWithin(0, i, tail);
      this.#base += i;
      this.#head = 0;
      this.#tail = tail - i;
    } else {
      this.#head = i;
    }
  }
}

/**
 * The instrumentation `protokv serve` runs with, or `null` when metrics and tracing are both off.
 * The tracing SDK is imported here, and only when tracing is on.
 */
export async function createInstrumentation(options: {
  metrics: boolean;
  /** Absent when tracing is off. */
  tracing?: TracingConfig;
  serviceVersion?: string;
}): Promise<Instrumentation | null> {
  if (!options.metrics && options.tracing === undefined) return null;
  let tracer: RequestTracer | null = null;
  if (options.tracing !== undefined) {
    const { startTracing } = await import('./tracing.js');
    tracer = startTracing({ ...options.tracing, serviceVersion: options.serviceVersion });
  }
  return new Instrumentation({ figures: options.metrics ? new Figures() : null, tracer });
}
