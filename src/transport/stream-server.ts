/**
 * The server side of one protokv stream: any Node `Duplex` carrying frames (a TCP socket, a TLS
 * socket, a yamux stream). TCP, TLS and yamux listeners are thin adapters that hand each stream
 * to `serveStream`.
 *
 * Requests are answered in the order they arrive, pipelined: each decoded request runs at once,
 * and its response takes its place in an ordered queue, so a slow asynchronous write never lets
 * a later read overtake it. Responses produced while handling one chunk of input are written
 * together (one syscall).
 *
 * What one stream may cost is bounded (SPEC 4):
 * - output: once its unsent responses pass `maxOutputBuffer` bytes (or `maxPendingResponses`
 *   responses), the stream is no longer read and nothing more of it is executed until they
 *   drain — that stream only;
 * - input: a partly received frame holds only the bytes that arrived, reserved against the
 *   server-wide `InputBudget`; a frame must complete within `frameTimeoutMs` of the server
 *   being ready to read it, or the stream is closed;
 * - time: one turn of the event loop executes at most about a megabyte of requests and
 *   responses before yielding to other clients; large payloads are inflated and compressed in
 *   the thread pool, large responses encoded in slices and written in pieces.
 */
import type { Duplex } from 'node:stream';
import type { CommandResponse } from '../protocol/generated/abi.js';
import { FrameDecoder, COMPRESSION_THRESHOLD, DEFAULT_MAX_FRAME_SIZE, HEADER_SIZE, NO_FRAME, PLAIN_FRAME } from '../codec/frame.js';
import { inflate } from '../codec/compression.js';
import { decodeRequestAt } from '../protocol/wire.js';
import { encodeLargeResponseFrame, encodeResponseFrame, isLargeResponse, responseSize, writeSmallResponseFrame } from '../protocol/response-encoder.js';
import { errors, KvError } from '../errors.js';
import { RateLimitedLog } from '../logger.js';
import { isPromise } from '../storage/store.js';
import type { Service } from '../service/service.js';
import type { CommandContext, RequestStream } from '../service/commands.js';
import type { PublishedMessage, SubscriptionSink } from '../service/pubsub.js';
import type { StreamInstrumentation, StreamOrigin } from '../observability/instrumentation.js';
import { InputBudget, InputReservation, type BudgetWaiter } from './input-budget.js';
import { FrameTimer } from './frame-timer.js';

export interface StreamLimits {
  /** Largest frame, and largest inflated payload, accepted; also the largest response sent. Default 64 MiB. */
  maxFrameSize?: number;
  /** Responses waiting to be written before the stream stops being read and served. Default 1024. */
  maxPendingResponses?: number;
  /** Bytes of responses waiting to be written before the stream stops being read and served. Default 32 MiB. */
  maxOutputBuffer?: number;
  /** Messages a subscriber may have unwritten before it is disconnected. Default 10,000. */
  subscriberBacklogMessages?: number;
  /** Bytes a subscriber may have unwritten before it is disconnected. Default 64 MiB. */
  subscriberBacklogBytes?: number;
  /**
   * A frame must arrive within this many ms of its first byte (plus a second per MiB of its size)
   * while the server is ready to read it; 0: no limit. Default 10 s.
   */
  frameTimeoutMs?: number;
}

export const STREAM_DEFAULTS: Required<StreamLimits> = {
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  maxPendingResponses: 1024,
  maxOutputBuffer: 32 * 1024 * 1024,
  subscriberBacklogMessages: 10_000,
  subscriberBacklogBytes: 64 * 1024 * 1024,
  frameTimeoutMs: 10_000,
};

/** What every stream of one server shares. */
export interface StreamShared {
  /** The server-wide cap on buffered input. */
  readonly inputBudget: InputBudget;
  /** Streams closed because a frame did not complete in time (clients can cause many). */
  readonly frameTimeouts: RateLimitedLog;
}

/** Shared state for streams served on their own (tests, embedding): a default budget. */
export function standaloneShared(service: Service): StreamShared {
  return {
    inputBudget: new InputBudget(),
    frameTimeouts: new RateLimitedLog(service.logger, 'info', 'frame not completed in time; closing the stream'),
  };
}

/** A served stream, as its listener sees it. */
export interface ServedStream {
  /** Stops reading, answers what was already received, then ends the stream. */
  drain(): Promise<void>;
  /** Resolves when the stream has closed. */
  readonly closed: Promise<void>;
}

/** Batches up to this size are joined into one buffer before writing. */
const MAX_JOINED_BATCH = 256 * 1024;
/** Frames are handed to the stream in pieces of at most this size (no copy), so TLS encrypts as it sends. */
const WRITE_PIECE = 1024 * 1024;
/** One turn of the event loop handles about this many bytes of requests and responses… */
const TURN_BYTES = 1024 * 1024;
/** …or this many requests, then lets other clients have theirs. */
const TURN_REQUESTS = 8192;
/** After a protocol error ends the stream, the peer has this long to close its side. */
const LINGER_MS = 5_000;

/** A response in the ordered output queue. */
interface Slot {
  /** The response, once executed; undefined while the store works on it. */
  response: CommandResponse | undefined;
  /** The encoded frame, once encoded (pieces written in order), or its encoding under way. */
  frame: readonly Buffer[] | Promise<readonly Buffer[]> | undefined;
  /** Whether `frame` is shared with other streams (a published message): never joined or altered. */
  shared: boolean;
  /**
   * Bytes this slot counts in the output buffer until it is written: its payload size, known
   * once it has a response, so the output limit applies to responses queued or being encoded.
   */
  counted: number;
  /** Whether the encoding under way is being waited for. */
  awaited: boolean;
}

/**
 * Serves `stream`. `closeConnection`, for a stream multiplexed over a connection, closes that
 * whole connection: a stream that breaks the frame time limit takes its connection with it, or a
 * client could drip bytes on a new stream forever. `origin` (its transport and listener port)
 * labels its metrics and traces.
 */
export function serveStream(
  stream: Duplex,
  service: Service,
  limits: StreamLimits = {},
  shared: StreamShared = standaloneShared(service),
  closeConnection?: () => void,
  origin?: StreamOrigin,
): ServedStream {
  return new StreamServer(stream, service, { ...STREAM_DEFAULTS, ...limits }, shared, closeConnection, origin);
}

class StreamServer implements ServedStream, RequestStream, SubscriptionSink, BudgetWaiter {
  readonly closed: Promise<void>;
  readonly #stream: Duplex;
  readonly #service: Service;
  readonly #limits: Required<StreamLimits>;
  readonly #shared: StreamShared;
  readonly #decoder: FrameDecoder;
  readonly #context: CommandContext;
  readonly #instrumentation: StreamInstrumentation | null;

  // --- output ---
  /** Responses not yet written, in request order; used only while an earlier one is not ready. */
  readonly #queue: Slot[] = [];
  /** Responses accepted but not yet fully written to the OS. */
  #unwritten = 0;
  /** Bytes of those responses (estimated while a large one is being encoded). */
  #outputBytes = 0;
  /** Frames produced since the last write; they leave together, in one write. */
  #batch: Buffer[] = [];
  /**
   * Small responses that follow the last frame of `#batch`, not encoded yet: they are encoded
   * together into one buffer when the batch is written (or before a frame is added behind them),
   * so a pipelined batch costs one allocation instead of one per response and a join.
   */
  readonly #staged: CommandResponse[] = [];
  readonly #stagedSizes: number[] = [];
  #stagedBytes = 0;
  #batchBytes = 0;
  #batchCount = 0;
  #batchShared = false;
  /** The responses in `#batch`, kept only when after-send hooks want them. */
  #batchResponses: CommandResponse[] = [];
  #flushScheduled = false;

  // --- input ---
  /** A compressed payload is being inflated in the thread pool; later frames wait for it. */
  #inflating = false;
  /** Requests answered over several turns that hold the stream (see `RequestStream.hold`). */
  #holds = 0;
  /** The rest of the buffered requests run on the next turn of the event loop. */
  #continueScheduled = false;
  #readingPaused = false;
  /** This stream's share of the server-wide input budget. */
  readonly #reservation: InputReservation;
  /** Frames taken from the decoder so far; tells a new partial frame from the one being timed. */
  #frames = 0;
  readonly #frameTimer: FrameTimer;
  readonly #closeConnection: (() => void) | undefined;

  // --- life cycle ---
  /** No new input is read (shutdown, or the client finished sending); what is buffered is still answered. */
  #draining = false;
  /** Nothing more is executed: framing is lost, or the stream became a subscription. */
  #inputClosed = false;
  #isClosed = false;
  #subscriptionCancel: (() => void) | undefined;

  constructor(
    stream: Duplex,
    service: Service,
    limits: Required<StreamLimits>,
    shared: StreamShared,
    closeConnection: (() => void) | undefined,
    origin: StreamOrigin | undefined,
  ) {
    this.#stream = stream;
    this.#closeConnection = closeConnection;
    this.#frameTimer = new FrameTimer(limits.frameTimeoutMs, () => this.#frameTimedOut());
    this.#service = service;
    this.#limits = limits;
    this.#shared = shared;
    this.#reservation = new InputReservation(shared.inputBudget, this);
    this.#decoder = new FrameDecoder(limits.maxFrameSize);
    this.#context = service.contextFor(this, origin, limits.maxFrameSize);
    this.#instrumentation = this.#context.instrumentation;
    this.closed = new Promise((resolve) => stream.once('close', resolve));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => this.#onEnd());
    stream.on('drain', () => this.#updateInput());
    stream.on('error', (err) => service.logger.debug({ err }, 'stream error'));
    stream.once('close', () => this.#onClose());
  }

  drain(): Promise<void> {
    this.#draining = true;
    if (this.#subscriptionCancel !== undefined) this.end();
    else {
      this.#updateInput();
      this.#endIfIdle();
    }
    return this.closed;
  }

  // --- RequestStream / SubscriptionSink ---

  becomeSubscriber(_id: number, cancel: () => void): SubscriptionSink {
    this.#subscriptionCancel = cancel;
    return this;
  }

  hold(settled: Promise<unknown>): void {
    this.#holds++;
    const release = (): void => {
      this.#holds--;
      this.#process();
    };
    settled.then(release, release);
  }

  deliver(message: PublishedMessage): void {
    if (this.#isClosed) return;
    const limits = this.#limits;
    if (this.#unwritten >= limits.subscriberBacklogMessages || this.#outputBytes >= limits.subscriberBacklogBytes) {
      this.#service.logger.warn(
        { unwrittenMessages: this.#unwritten, unwrittenBytes: this.#outputBytes },
        'subscriber backlog limit reached; disconnecting the subscriber',
      );
      this.#instrumentation?.subscriberDropped();
      this.#cancelSubscription();
      this.#destroy('the subscriber fell too far behind');
      return;
    }
    const frame = (message.encoded ??= encodeShared(message.response));
    this.#enqueue({ response: message.response, frame, shared: true, counted: 0, awaited: false });
  }

  end(): void {
    this.#subscriptionCancel = undefined;
    this.#draining = true;
    this.#inputClosed = true;
    this.#updateInput();
    this.#endIfIdle();
  }

  /** Input budget: room freed up; reserve it and read on if it now fits. */
  retry(): boolean {
    if (this.#isClosed) return true;
    if (!this.#reserveInput()) return false;
    this.#reservation.retried();
    this.#updateInput();
    return true;
  }

  // --- input ---

  #onData(chunk: Buffer): void {
    // Once draining, input is read only so the peer's side can finish; it is not executed.
    if (this.#draining) return;
    if (this.#instrumentation !== null) this.#instrumentation.received(chunk.length);
    this.#decoder.push(chunk);
    this.#process();
  }

  /** Whether executing must wait: for an inflation, a held request, or the output to drain. */
  #blocked(): boolean {
    return (
      this.#inflating ||
      this.#holds > 0 ||
      this.#outputBytes >= this.#limits.maxOutputBuffer ||
      this.#unwritten >= this.#limits.maxPendingResponses
    );
  }

  /** Executes buffered frames until none is complete, the stream is blocked, or this turn's share is used. */
  #process(): void {
    let work = 0;
    let requests = 0;
    const outputAtStart = this.#outputBytes;
    try {
      while (!this.#inputClosed && !this.#isClosed && !this.#continueScheduled && !this.#blocked()) {
        if (work + this.#outputBytes - outputAtStart >= TURN_BYTES || requests >= TURN_REQUESTS) {
          this.#continueScheduled = true;
          setImmediate(this.#continue);
          break;
        }
        const decoder = this.#decoder;
        let flags: number;
        try {
          flags = decoder.nextFrameInPlace();
        } catch (err) {
          this.#rejectFrame(err);
          break;
        }
        if (flags === NO_FRAME) break;
        this.#frames++;
        requests++;
        const { payloadBuffer, payloadStart, payloadEnd } = decoder;
        work += payloadEnd - payloadStart;
        if (this.#subscriptionCancel !== undefined) {
          this.#push(this.#service.errorResponse(errors.subscriptionProtocol()));
          this.#stopServing();
          break;
        }
        if (flags === PLAIN_FRAME) {
          this.#handle(payloadBuffer, payloadStart, payloadEnd);
          continue;
        }
        let inflated: Buffer | Promise<Buffer>;
        try {
          inflated = inflate(payloadBuffer.subarray(payloadStart, payloadEnd), this.#limits.maxFrameSize);
        } catch (err) {
          this.#rejectFrame(err);
          continue;
        }
        if (!isPromise(inflated)) {
          work += inflated.length;
          this.#handle(inflated, 0, inflated.length);
          continue;
        }
        this.#inflating = true;
        inflated.then(
          (payload) => this.#inflated(payload),
          (err: unknown) => this.#inflated(undefined, err),
        );
      }
    } finally {
      this.#flush();
    }
    this.#updateInput();
    this.#endIfIdle();
  }

  readonly #continue = (): void => {
    this.#continueScheduled = false;
    this.#process();
  };

  #inflated(payload: Buffer | undefined, err?: unknown): void {
    this.#inflating = false;
    if (this.#isClosed) return;
    if (payload !== undefined) this.#handle(payload, 0, payload.length);
    else this.#rejectFrame(err);
    this.#process();
  }

  /** Executes the request at bytes `[start, end)` of `buf`. */
  #handle(buf: Buffer, start: number, end: number): void {
    let request;
    try {
      request = decodeRequestAt(buf, start, end, this.#service.maxKeysPerCommand);
    } catch (err) {
      this.#push(this.#service.errorResponse(err));
      return;
    }
    const result = this.#service.execute(request, this.#context);
    if (!isPromise(result)) {
      this.#push(result);
      return;
    }
    const slot: Slot = { response: undefined, frame: undefined, shared: false, counted: 0, awaited: false };
    this.#enqueue(slot);
    void result.then((response) => {
      slot.response = response;
      this.#count(slot);
      this.#drainQueue();
    });
  }

  /** A frame that cannot be read: 400 and carry on, or, when framing is lost (413), answer and stop. */
  #rejectFrame(err: unknown): void {
    this.#push(this.#service.errorResponse(err));
    if (err instanceof KvError && err.code === 'FRAME_TOO_LARGE') {
      this.#decoder.fail(err);
      this.#service.logger.warn({ err: err.message }, 'frame too large; closing the stream');
      this.#stopServing();
    }
  }

  /**
   * Brings reading in line with the state: reads while nothing blocks the stream, its writes are
   * not backed up and its partial frame has room in the input budget; times the partial frame
   * while reading.
   */
  #updateInput(): void {
    if (this.#isClosed) return;
    const fits = this.#reserveInput();
    const reading =
      fits && !this.#draining && !this.#inputClosed && !this.#continueScheduled && !this.#blocked() && !this.#stream.writableNeedDrain;
    if (reading === this.#readingPaused) {
      this.#readingPaused = !reading;
      if (reading) this.#stream.resume();
      else this.#stream.pause();
    }
    // A partial frame is timed while the client is the one to send the rest.
    if (reading && this.#decoder.bufferedBytes > 0) this.#frameTimer.await(this.#frames, this.#decoder.frameBytesExpected);
    else this.#frameTimer.stop();
  }

  /**
   * Keeps the input budget reservation equal to what the buffered input will need once its head
   * frame is complete. False when that does not fit: the stream then waits for room.
   */
  #reserveInput(): boolean {
    return this.#reservation.update(this.#inputClosed ? 0 : this.#decoder.frameBytesExpected, this.#decoder.bufferedBytes);
  }

  #frameTimedOut(): void {
    if (this.#isClosed) return;
    const ms = this.#limits.frameTimeoutMs;
    this.#shared.frameTimeouts.log({ frameTimeoutMs: ms, bufferedBytes: this.#decoder.bufferedBytes });
    const err = errors.limitReached(`frame not completed within ${ms} ms`);
    this.#decoder.fail(err);
    this.#push(this.#service.errorResponse(err));
    this.#flush();
    this.#stopServing();
    this.#closeConnection?.();
  }

  #onEnd(): void {
    // The client finished sending. A subscriber closing its side ends the subscription.
    this.#cancelSubscription();
    this.#draining = true;
    this.#updateInput();
    this.#endIfIdle();
  }

  #onClose(): void {
    this.#isClosed = true;
    this.#cancelSubscription();
    this.#queue.length = 0;
    this.#frameTimer.dispose();
    this.#reservation.release();
  }

  // --- output ---

  /** Queues a response that is ready now behind any pending one, or writes it now. */
  #push(response: CommandResponse): void {
    if (this.#queue.length === 0) {
      const size = responseSize(response);
      if (size <= this.#limits.maxFrameSize && !isLargeResponse(size)) {
        this.#unwritten++;
        if (size <= COMPRESSION_THRESHOLD) this.#stage(response, size);
        else this.#write(encodeResponseFrame(response, size), response);
        return;
      }
    }
    this.#enqueue({ response, frame: undefined, shared: false, counted: 0, awaited: false });
  }

  #enqueue(slot: Slot): void {
    this.#queue.push(slot);
    this.#unwritten++;
    if (slot.response !== undefined) this.#count(slot);
    this.#drainQueue();
  }

  /** Counts a queued response in the output buffer at its payload size. */
  #count(slot: Slot): void {
    slot.counted = responseSize(slot.response!);
    this.#outputBytes += slot.counted;
  }

  /** Writes the responses at the head of the queue that are ready, encoding them as needed. */
  #drainQueue(): void {
    const queue = this.#queue;
    while (queue.length > 0 && !this.#isClosed) {
      const slot = queue[0];
      if (slot.frame === undefined) {
        if (slot.response === undefined) return;
        const size = slot.counted;
        if (size <= COMPRESSION_THRESHOLD && size <= this.#limits.maxFrameSize) {
          queue.shift();
          this.#outputBytes -= size;
          this.#stage(slot.response, size);
          continue;
        }
        slot.frame = this.#encode(slot);
      }
      if (isPromise(slot.frame)) {
        if (!slot.awaited) this.#awaitEncoding(slot, slot.frame);
        return;
      }
      queue.shift();
      this.#outputBytes -= slot.counted;
      this.#writePieces(slot.frame, slot.response!, slot.shared);
    }
    // No flush here: the writes of one commit resolve together, and the flush #write scheduled
    // runs after all of them, so they leave in one write instead of one each.
  }

  /** Writes a frame being encoded once it is ready. */
  #awaitEncoding(slot: Slot, pending: Promise<readonly Buffer[]>): void {
    slot.awaited = true;
    pending.then(
      (pieces) => {
        slot.frame = pieces;
        this.#drainQueue();
      },
      (err: unknown) => {
        this.#service.logger.error({ err }, 'cannot encode a response; closing the stream');
        this.#destroy('a response could not be encoded');
      },
    );
  }

  /** The frame for a response: encoded now when small, in slices and the thread pool when large. */
  #encode(slot: Slot): readonly Buffer[] | Promise<readonly Buffer[]> {
    let response = slot.response!;
    let size = responseSize(response);
    if (size > this.#limits.maxFrameSize) {
      // The last line of defence: handlers refuse large answers while gathering them, but a
      // single huge stored value, or a hook, can still produce one.
      response = this.#service.errorResponse(errors.responseTooLarge(`a response of ${size} bytes`, this.#limits.maxFrameSize));
      slot.response = response;
      size = responseSize(response);
    }
    return isLargeResponse(size) ? encodeLargeResponseFrame(response) : [encodeResponseFrame(response, size)];
  }

  /** Adds a small response, of `size` payload bytes, to the batch; it is encoded when the batch is written. */
  #stage(response: CommandResponse, size: number): void {
    if (this.#isClosed) return;
    this.#staged.push(response);
    this.#stagedSizes.push(size);
    this.#stagedBytes += HEADER_SIZE + size;
    this.#batchBytes += HEADER_SIZE + size;
    this.#addToBatch(HEADER_SIZE + size, response);
  }

  /** Encodes the staged responses into one buffer at the end of the batch. */
  #encodeStaged(): void {
    const staged = this.#staged;
    if (staged.length === 0) return;
    const sizes = this.#stagedSizes;
    const buf = Buffer.allocUnsafe(this.#stagedBytes);
    let pos = 0;
    for (let i = 0; i < staged.length; i++) pos = writeSmallResponseFrame(buf, pos, staged[i], sizes[i]);
    this.#batch.push(buf);
    staged.length = 0;
    sizes.length = 0;
    this.#stagedBytes = 0;
  }

  /** Adds one response's frame to the current batch; the batch is written at the end of this tick at the latest. */
  #write(frame: Buffer, response: CommandResponse): void {
    if (this.#isClosed) return;
    this.#encodeStaged();
    this.#batch.push(frame);
    this.#batchBytes += frame.length;
    this.#addToBatch(frame.length, response);
  }

  #writePieces(pieces: readonly Buffer[], response: CommandResponse, shared: boolean): void {
    if (this.#isClosed) return;
    this.#encodeStaged();
    let bytes = 0;
    for (const piece of pieces) {
      this.#batch.push(piece);
      bytes += piece.length;
    }
    this.#batchBytes += bytes;
    if (shared || pieces.length > 1) this.#batchShared = true;
    this.#addToBatch(bytes, response);
  }

  #addToBatch(bytes: number, response: CommandResponse): void {
    this.#outputBytes += bytes;
    this.#batchCount++;
    if (this.#service.wantsSentNotice) this.#batchResponses.push(response);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flush);
    }
  }

  /**
   * Writes the batch: small batches of frames of our own are joined into one buffer (one write,
   * one callback — cheaper than a writev of many small buffers); shared frames and large batches
   * are written piece by piece without copying, large frames in pieces of `WRITE_PIECE`.
   */
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const count = this.#batchCount;
    if (count === 0 || this.#isClosed) return;
    this.#encodeStaged();
    const batch = this.#batch;
    const stream = this.#stream;
    const bytes = this.#batchBytes;
    const responses = this.#batchResponses.length > 0 ? this.#batchResponses : undefined;
    const done = (err?: Error | null): void => {
      this.#written(count, bytes);
      if (err == null && this.#instrumentation !== null) this.#instrumentation.written(bytes);
      if (err == null && responses !== undefined) for (const r of responses) this.#service.responseSent(r);
    };
    if (batch.length === 1 && bytes <= WRITE_PIECE) stream.write(batch[0], done);
    else if (!this.#batchShared && bytes <= MAX_JOINED_BATCH) stream.write(Buffer.concat(batch, bytes), done);
    else {
      stream.cork();
      const last = batch.length - 1;
      for (let i = 0; i <= last; i++) {
        const piece = batch[i];
        for (let at = 0; at < piece.length; at += WRITE_PIECE) {
          const end = Math.min(piece.length, at + WRITE_PIECE);
          const part = at === 0 && end === piece.length ? piece : piece.subarray(at, end);
          if (i === last && end === piece.length) stream.write(part, done);
          else stream.write(part);
        }
      }
      stream.uncork();
    }
    this.#batch = [];
    this.#batchBytes = 0;
    this.#batchCount = 0;
    this.#batchShared = false;
    if (responses !== undefined) this.#batchResponses = [];
  };

  #written(count: number, bytes: number): void {
    this.#unwritten -= count;
    this.#outputBytes -= bytes;
    if (this.#isClosed) return;
    // Requests buffered while the output was over its limit run now that it has drained.
    this.#process();
  }

  #endIfIdle(): void {
    if (!this.#draining || this.#isClosed || this.#unwritten > 0 || this.#subscriptionCancel !== undefined) return;
    if (!this.#inputClosed && (this.#inflating || this.#holds > 0 || this.#continueScheduled || this.#decoder.hasFrame())) return;
    if (!this.#stream.writableEnded) this.#stream.end();
    // Let unread input flow (and be dropped) so the readable side reaches its end too.
    this.#stream.resume();
  }

  /**
   * Stops serving after a protocol error: forgets any subscription, writes what is pending, then
   * ends; a peer that does not close its side in time is cut off.
   */
  #stopServing(): void {
    this.#cancelSubscription();
    this.end();
    setTimeout(() => this.#destroy('the peer did not close after a protocol error'), LINGER_MS).unref();
  }

  /**
   * Closes the stream at once. Destroying with an error hands that one error to every write
   * still queued; without one, Node creates an error per queued write, which for a subscriber
   * with thousands of messages queued takes seconds.
   */
  #destroy(reason: string): void {
    if (!this.#stream.destroyed) this.#stream.destroy(new Error(reason));
  }

  #cancelSubscription(): void {
    const cancel = this.#subscriptionCancel;
    this.#subscriptionCancel = undefined;
    cancel?.();
  }
}

/** A published message's frame, encoded once for all its subscribers. */
function encodeShared(response: CommandResponse): readonly Buffer[] | Promise<readonly Buffer[]> {
  const size = responseSize(response);
  return isLargeResponse(size) ? encodeLargeResponseFrame(response) : [encodeResponseFrame(response, size)];
}
