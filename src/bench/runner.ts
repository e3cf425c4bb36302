/**
 * The load loop. Each stream keeps up to `pipeline` requests in flight: whenever responses
 * arrive it tops itself up from a shared budget (a request count or a deadline), writing all new
 * requests as one buffer. Responses are matched to send times in order (the server answers in
 * order), their status is read straight from the bytes, and latencies go into one HDR
 * histogram. The hot path is callbacks only: no promise and no decoded message per request.
 */
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { FrameDecoder, DEFAULT_MAX_FRAME_SIZE } from '../codec/frame.js';
import { KvError } from '../errors.js';
import { responseStatus, type Workload } from './workload.js';

/** Latencies are recorded in microseconds. */
export type LatencyHistogram = Histogram;

/** Creates the histogram a run records into: 1 µs to 60 s (auto-growing), 3 significant digits. */
export function createHistogram(): LatencyHistogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
    useWebAssembly: false,
  });
}

export interface RunSettings {
  streams: Duplex[];
  workload: Workload;
  pipeline: number;
  /** Stop after this many requests… */
  requests?: number;
  /** …or after this many milliseconds (requests in flight then are still awaited). */
  durationMs?: number;
  /** Give up when no response at all arrives for this long (ms). Default 30 s. */
  stallTimeoutMs?: number;
  /** Largest response frame accepted. */
  maxFrameSize?: number;
}

/** What a run measured. */
export interface RunResult {
  /** Requests that received a response (of any status). */
  completed: number;
  /** Responses whose status was not 2xx (or unreadable). */
  errorResponses: number;
  /** Streams that failed or closed before the run ended. */
  connectionErrors: number;
  /** Requests lost in flight on a failed stream, or still unanswered when the run stalled. */
  lostRequests: number;
  /** From the first request sent to the last response received. */
  elapsedMs: number;
  /** From the first request sent to the end of the run (includes waiting after the last response). */
  wallMs: number;
  histogram: LatencyHistogram;
  /** Why the run ended early, if it did. */
  aborted: string | undefined;
}

/** A snapshot for the progress line. */
export interface RunProgress {
  completed: number;
  errors: number;
  elapsedMs: number;
}

/** A run in progress; `done` resolves when it ends. */
export interface RunHandle {
  readonly done: Promise<RunResult>;
  progress(): RunProgress;
}

/** Starts the load on already-open streams. */
export function startRun(settings: RunSettings): RunHandle {
  const run = new Run(settings);
  return { done: run.done, progress: () => run.progress() };
}

class Run {
  readonly done: Promise<RunResult>;
  readonly histogram = createHistogram();
  readonly workload: Workload;
  readonly pipeline: number;
  readonly maxFrameSize: number;
  /** Requests not yet handed out; Infinity in duration mode. */
  budget: number;
  readonly deadline: number;
  completed = 0;
  errorResponses = 0;
  connectionErrors = 0;
  lostRequests = 0;
  /** Requests sent and not yet answered, over all streams. */
  outstanding = 0;
  stopped = false;
  finished = false;
  readonly startedAt: number;
  lastResponseAt: number;
  readonly workers: Worker[];
  readonly #resolve: (r: RunResult) => void;
  readonly #watchdog: NodeJS.Timeout;
  readonly #deadlineTimer: NodeJS.Timeout | undefined;

  constructor(settings: RunSettings) {
    this.workload = settings.workload;
    this.pipeline = settings.pipeline;
    this.maxFrameSize = settings.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    let resolve!: (r: RunResult) => void;
    this.done = new Promise((r) => (resolve = r));
    this.#resolve = resolve;
    this.budget = settings.requests ?? Number.POSITIVE_INFINITY;
    this.startedAt = performance.now();
    this.lastResponseAt = this.startedAt;
    this.deadline = settings.durationMs === undefined ? Number.POSITIVE_INFINITY : this.startedAt + settings.durationMs;
    this.workers = settings.streams.map((s) => new Worker(this, s));

    const stallMs = settings.stallTimeoutMs ?? 30_000;
    this.#watchdog = setInterval(() => {
      if (performance.now() - this.lastResponseAt > stallMs && this.outstanding > 0) {
        this.finish(`no response for ${Math.round(stallMs / 1000)} s; ${this.outstanding} requests unanswered`);
      }
    }, Math.min(1000, stallMs));
    this.#watchdog.unref();
    if (settings.durationMs !== undefined) {
      // Idle streams only look at the clock when a response arrives; a timer covers the rest.
      this.#deadlineTimer = setTimeout(() => this.stop(), settings.durationMs);
      this.#deadlineTimer.unref();
    }

    if (this.workers.length === 0) {
      this.finish('no stream could be opened');
      return;
    }
    for (const w of this.workers) w.topUp(this.startedAt);
    this.checkDone();
  }

  /** Hands out up to `want` requests. */
  take(want: number, now: number): number {
    if (this.stopped) return 0;
    if (now >= this.deadline) {
      this.stop();
      return 0;
    }
    const n = Math.min(want, this.budget);
    this.budget -= n;
    return n;
  }

  stop(): void {
    this.stopped = true;
    this.checkDone();
  }

  checkDone(): void {
    if (this.finished || this.outstanding > 0) return;
    if (this.stopped || this.budget === 0) this.finish(undefined);
  }

  /** A stream failed: its in-flight requests go back into the budget for the others. */
  lost(worker: Worker, inFlight: number): void {
    this.connectionErrors++;
    this.outstanding -= inFlight;
    if (this.budget !== Number.POSITIVE_INFINITY) this.budget += inFlight;
    this.lostRequests += inFlight;
    const alive = this.workers.filter((w) => w.alive);
    if (alive.length === 0) {
      this.finish(this.finished ? undefined : 'every stream failed');
      return;
    }
    const now = performance.now();
    for (const w of alive) w.topUp(now);
    this.checkDone();
  }

  finish(aborted: string | undefined): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.#watchdog);
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    for (const w of this.workers) w.detach();
    if (aborted !== undefined) this.lostRequests += this.outstanding;
    this.#resolve({
      completed: this.completed,
      errorResponses: this.errorResponses,
      connectionErrors: this.connectionErrors,
      lostRequests: this.lostRequests,
      elapsedMs: Math.max(this.lastResponseAt - this.startedAt, 0.001),
      wallMs: Math.max(performance.now() - this.startedAt, 0.001),
      histogram: this.histogram,
      aborted,
    });
  }

  progress(): RunProgress {
    return {
      completed: this.completed,
      errors: this.errorResponses + this.connectionErrors,
      elapsedMs: performance.now() - this.startedAt,
    };
  }
}

/** One stream's share of the load. */
class Worker {
  alive = true;
  readonly #run: Run;
  readonly #stream: Duplex;
  readonly #decoder: FrameDecoder;
  /** Send times of the requests in flight, a ring in send order. */
  readonly #sentAt: Float64Array;
  #head = 0;
  #inFlight = 0;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onGone = (): void => this.#fail();

  constructor(run: Run, stream: Duplex) {
    this.#run = run;
    this.#stream = stream;
    this.#decoder = new FrameDecoder(run.maxFrameSize);
    this.#sentAt = new Float64Array(run.pipeline);
    stream.on('data', this.#onData);
    stream.on('error', this.#onGone);
    stream.on('close', this.#onGone);
    stream.on('end', this.#onGone);
  }

  /** Sends as many requests as the pipeline has room for and the budget allows. */
  topUp(now: number): void {
    const run = this.#run;
    if (!this.alive) return;
    const n = run.take(run.pipeline - this.#inFlight, now);
    if (n === 0) return;
    const sentAt = this.#sentAt;
    const size = sentAt.length;
    let slot = (this.#head + this.#inFlight) % size;
    for (let i = 0; i < n; i++) {
      sentAt[slot] = now;
      if (++slot === size) slot = 0;
    }
    this.#inFlight += n;
    run.outstanding += n;
    this.#stream.write(run.workload.batch(n));
  }

  /** Stops listening to the stream (the run is over). */
  detach(): void {
    this.alive = false;
    this.#stream.off('data', this.#onData);
    this.#stream.off('error', this.#onGone);
    this.#stream.off('close', this.#onGone);
    this.#stream.off('end', this.#onGone);
    // Whatever still arrives must be consumed, or the server could block writing it.
    this.#stream.resume();
  }

  #receive(chunk: Buffer): void {
    const run = this.#run;
    const now = performance.now();
    const decoder = this.#decoder;
    const histogram = run.histogram;
    const sentAt = this.#sentAt;
    decoder.push(chunk);
    let answered = 0;
    for (;;) {
      let payload: Buffer | undefined;
      try {
        payload = decoder.next();
      } catch (err) {
        // A frame we cannot read (bad gzip) is an error response; lost framing ends the stream.
        run.errorResponses++;
        const framingLost = err instanceof KvError && err.code === 'FRAME_TOO_LARGE';
        if (!framingLost && this.#inFlight > 0) {
          this.#consume();
          answered++;
          continue;
        }
        this.#fail();
        return;
      }
      if (payload === undefined) break;
      if (this.#inFlight === 0) continue; // not a response to us (e.g. a publish to a subscriber)
      const status = responseStatus(payload);
      if (status < 200 || status >= 300) run.errorResponses++;
      const micros = Math.round((now - sentAt[this.#head]) * 1000);
      histogram.recordValue(micros > 0 ? micros : 1);
      this.#consume();
      answered++;
    }
    if (answered === 0) return;
    run.completed += answered;
    run.outstanding -= answered;
    run.lastResponseAt = now;
    this.topUp(now);
    if (this.#inFlight === 0) run.checkDone();
  }

  #consume(): void {
    if (++this.#head === this.#sentAt.length) this.#head = 0;
    this.#inFlight--;
  }

  #fail(): void {
    if (!this.alive) return;
    this.detach();
    this.#stream.destroy();
    const lost = this.#inFlight;
    this.#inFlight = 0;
    this.#run.lost(this, lost);
  }
}
