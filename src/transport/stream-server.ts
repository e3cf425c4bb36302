/**
 * The server side of one protokv stream: any Node `Duplex` carrying frames (a TCP socket, a TLS
 * socket, a yamux stream). TCP, TLS and yamux listeners are thin adapters that hand each stream
 * to `serveStream`.
 *
 * Requests are answered in the order they arrive, pipelined: each decoded request runs at once,
 * and its response takes its place in an ordered queue, so a slow asynchronous write never lets
 * a later read overtake it. Responses produced while handling one chunk of input are written
 * together (one syscall). Reading pauses while too many responses wait to be written, so a client
 * that sends without reading cannot grow the server's memory.
 */
import type { Duplex } from 'node:stream';
import type { CommandResponse } from '../protocol/generated/abi.js';
import { FrameDecoder, DEFAULT_MAX_FRAME_SIZE } from '../codec/frame.js';
import { decodeRequest } from '../protocol/wire.js';
import { encodeResponseFrame } from '../protocol/response-encoder.js';
import { errors, KvError } from '../errors.js';
import { isPromise } from '../storage/store.js';
import type { Service } from '../service/service.js';
import type { CommandContext } from '../service/commands.js';
import type { PublishedMessage, SubscriberContext, SubscriptionSink } from '../service/pubsub.js';
import type { StreamInstrumentation, StreamOrigin } from '../observability/instrumentation.js';

export interface StreamLimits {
  /** Largest frame, and largest inflated payload, accepted. Default 64 MiB. */
  maxFrameSize?: number;
  /** Responses waiting to be written before reading pauses. Default 1024. */
  maxPendingResponses?: number;
  /** Messages a subscriber may have unwritten before it is disconnected. Default 10,000. */
  subscriberBacklogMessages?: number;
  /** Bytes a subscriber may have unwritten before it is disconnected. Default 64 MiB. */
  subscriberBacklogBytes?: number;
}

export const STREAM_DEFAULTS: Required<StreamLimits> = {
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  maxPendingResponses: 1024,
  subscriberBacklogMessages: 10_000,
  subscriberBacklogBytes: 64 * 1024 * 1024,
};

/** A served stream, as its listener sees it. */
export interface ServedStream {
  /** Stops reading, answers what was already received, then ends the stream. */
  drain(): Promise<void>;
  /** Resolves when the stream has closed. */
  readonly closed: Promise<void>;
}

/** Batches up to this size are joined into one buffer before writing. */
const MAX_JOINED_BATCH = 256 * 1024;

/** A response slot in the ordered output queue. */
interface Slot {
  response: CommandResponse | undefined;
  frame: Buffer | undefined;
}

/** Serves `stream`; `origin` (its transport and listener port) labels its metrics and traces. */
export function serveStream(stream: Duplex, service: Service, limits: StreamLimits = {}, origin?: StreamOrigin): ServedStream {
  return new StreamServer(stream, service, { ...STREAM_DEFAULTS, ...limits }, origin);
}

class StreamServer implements ServedStream, SubscriberContext, SubscriptionSink {
  readonly closed: Promise<void>;
  readonly #stream: Duplex;
  readonly #service: Service;
  readonly #limits: Required<StreamLimits>;
  readonly #decoder: FrameDecoder;
  readonly #context: CommandContext;
  readonly #instrumentation: StreamInstrumentation | null;
  /** Responses not yet written, in request order; only used while an earlier one is pending. */
  readonly #queue: Slot[] = [];
  /** Responses accepted but not yet fully written to the OS. */
  #unwritten = 0;
  #readingPaused = false;
  #draining = false;
  #isClosed = false;
  #subscriptionCancel: (() => void) | undefined;
  /** Frames produced since the last write; they leave together, in one write. */
  #batch: Buffer[] = [];
  #batchBytes = 0;
  /** The responses in `#batch`, kept only when after-send hooks want them. */
  #batchResponses: CommandResponse[] = [];
  #flushScheduled = false;

  constructor(stream: Duplex, service: Service, limits: Required<StreamLimits>, origin: StreamOrigin | undefined) {
    this.#stream = stream;
    this.#service = service;
    this.#limits = limits;
    this.#decoder = new FrameDecoder(limits.maxFrameSize);
    this.#context = service.contextFor(this, origin);
    this.#instrumentation = this.#context.instrumentation;
    this.closed = new Promise((resolve) => stream.once('close', resolve));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => this.#onEnd());
    stream.on('drain', () => this.#maybeResume());
    stream.on('error', (err) => service.logger.debug({ err }, 'stream error'));
    stream.once('close', () => this.#onClose());
  }

  drain(): Promise<void> {
    this.#draining = true;
    if (this.#subscriptionCancel !== undefined) this.end();
    else {
      this.#stream.pause();
      this.#endIfIdle();
    }
    return this.closed;
  }

  // --- SubscriberContext / SubscriptionSink ---

  becomeSubscriber(_id: number, cancel: () => void): SubscriptionSink {
    this.#subscriptionCancel = cancel;
    return this;
  }

  deliver(message: PublishedMessage): void {
    if (this.#isClosed) return;
    const limits = this.#limits;
    if (this.#unwritten >= limits.subscriberBacklogMessages || this.#stream.writableLength >= limits.subscriberBacklogBytes) {
      this.#service.logger.warn(
        { unwrittenMessages: this.#unwritten, unwrittenBytes: this.#stream.writableLength },
        'subscriber backlog limit reached; disconnecting the subscriber',
      );
      this.#instrumentation?.subscriberDropped();
      this.#cancelSubscription();
      this.#stream.destroy();
      return;
    }
    message.encoded ??= encodeResponseFrame(message.response);
    this.#push(message.response, message.encoded);
  }

  end(): void {
    this.#subscriptionCancel = undefined;
    this.#draining = true;
    this.#endIfIdle();
  }

  // --- input ---

  #onData(chunk: Buffer): void {
    // Once draining, input is read only so the peer's side can finish; it is not executed.
    if (this.#draining) return;
    const stream = this.#stream;
    if (this.#instrumentation !== null) this.#instrumentation.received(chunk.length);
    this.#decoder.push(chunk);
    try {
      for (;;) {
        let payload: Buffer | undefined;
        try {
          payload = this.#decoder.next();
        } catch (err) {
          this.#rejectFrame(err);
          if (err instanceof KvError && err.code === 'FRAME_TOO_LARGE') break;
          if (this.#subscriptionCancel === undefined) continue;
          this.#stopServing();
          break;
        }
        if (payload === undefined) break;
        if (this.#draining) break;
        if (this.#subscriptionCancel !== undefined) {
          this.#push(this.#service.errorResponse(errors.subscriptionProtocol()));
          this.#stopServing();
          break;
        }
        this.#handle(payload);
      }
    } finally {
      this.#flush();
    }
    if (this.#unwritten >= this.#limits.maxPendingResponses || stream.writableNeedDrain) this.#pauseReading();
  }

  #handle(payload: Buffer): void {
    let request;
    try {
      request = decodeRequest(payload, this.#service.maxKeysPerCommand);
    } catch (err) {
      this.#push(this.#service.errorResponse(err));
      return;
    }
    const result = this.#service.execute(request, this.#context);
    if (!isPromise(result)) {
      this.#push(result);
      return;
    }
    const slot: Slot = { response: undefined, frame: undefined };
    this.#queue.push(slot);
    this.#unwritten++;
    void result.then((response) => {
      slot.response = response;
      this.#flushQueue();
    });
  }

  #rejectFrame(err: unknown): void {
    const response = this.#service.errorResponse(err);
    this.#push(response);
    if (err instanceof KvError && err.code === 'FRAME_TOO_LARGE') {
      // Framing is lost: nothing after this frame can be read.
      this.#service.logger.warn({ err: err.message }, 'frame too large; closing the stream');
      this.#stopServing();
    }
  }

  #onEnd(): void {
    // The client finished sending. A subscriber closing its side ends the subscription.
    this.#cancelSubscription();
    this.#draining = true;
    this.#endIfIdle();
  }

  #onClose(): void {
    this.#isClosed = true;
    this.#cancelSubscription();
    this.#queue.length = 0;
  }

  // --- output ---

  /** Queues a response behind any pending one, or writes it now. */
  #push(response: CommandResponse, frame?: Buffer): void {
    if (this.#queue.length > 0) {
      this.#queue.push({ response, frame });
      this.#unwritten++;
      return;
    }
    this.#unwritten++;
    this.#write(response, frame);
  }

  #flushQueue(): void {
    const queue = this.#queue;
    if (queue.length === 0 || queue[0].response === undefined) return;
    while (queue.length > 0 && queue[0].response !== undefined) {
      const slot = queue.shift()!;
      this.#write(slot.response!, slot.frame);
    }
    // No flush here: the writes of one commit resolve together, and the flush #write scheduled
    // runs after all of them, so they leave in one write instead of one each.
    this.#maybeResume();
  }

  /** Adds a response to the current batch; the batch is written at the end of this tick at the latest. */
  #write(response: CommandResponse, frame?: Buffer): void {
    if (this.#isClosed) return;
    const bytes = frame ?? encodeResponseFrame(response);
    this.#batch.push(bytes);
    this.#batchBytes += bytes.length;
    if (this.#service.wantsSentNotice) this.#batchResponses.push(response);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flush);
    }
  }

  /**
   * Writes the batch: small batches are joined into one buffer (one write, one callback — cheaper
   * than a writev of many small buffers), large ones are written piece by piece without copying.
   */
  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const batch = this.#batch;
    const count = batch.length;
    if (count === 0 || this.#isClosed) return;
    const stream = this.#stream;
    const responses = this.#batchResponses.length > 0 ? this.#batchResponses : undefined;
    const bytes = this.#batchBytes;
    const done = (err?: Error | null): void => {
      this.#written(count);
      if (err == null && this.#instrumentation !== null) this.#instrumentation.written(bytes);
      if (err == null && responses !== undefined) for (const r of responses) this.#service.responseSent(r);
    };
    if (count === 1) stream.write(batch[0], done);
    else if (this.#batchBytes <= MAX_JOINED_BATCH) stream.write(Buffer.concat(batch, this.#batchBytes), done);
    else {
      stream.cork();
      for (let i = 0; i < count - 1; i++) stream.write(batch[i]);
      stream.write(batch[count - 1], done);
      stream.uncork();
    }
    this.#batch = [];
    this.#batchBytes = 0;
    if (responses !== undefined) this.#batchResponses = [];
  };

  #written(count: number): void {
    this.#unwritten -= count;
    if (this.#unwritten === 0) this.#endIfIdle();
    this.#maybeResume();
  }

  #pauseReading(): void {
    if (this.#readingPaused || this.#draining) return;
    this.#readingPaused = true;
    this.#stream.pause();
  }

  #maybeResume(): void {
    if (!this.#readingPaused || this.#draining) return;
    if (this.#unwritten >= this.#limits.maxPendingResponses || this.#stream.writableNeedDrain) return;
    this.#readingPaused = false;
    this.#stream.resume();
  }

  #endIfIdle(): void {
    if (!this.#draining || this.#isClosed || this.#unwritten > 0 || this.#subscriptionCancel !== undefined) return;
    if (!this.#stream.writableEnded) this.#stream.end();
    // Let unread input flow (and be dropped) so the readable side reaches its end too.
    this.#stream.resume();
  }

  /** Stops serving after a protocol error: forgets any subscription, writes what is pending, then ends. */
  #stopServing(): void {
    this.#cancelSubscription();
    this.end();
  }

  #cancelSubscription(): void {
    const cancel = this.#subscriptionCancel;
    this.#subscriptionCancel = undefined;
    cancel?.();
  }
}
