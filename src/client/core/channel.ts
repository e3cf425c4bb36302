/**
 * One stream of frames seen as requests and responses (SPEC 1.6): requests go out in order and
 * the server answers in order, so each response settles the oldest request still waiting, and
 * any number may be in flight (pipelining). Responses nobody asked for — a subscription's
 * messages — go to `onMessage`.
 */
import { CommandResponse } from '../../protocol/generated/abi.js';
import { FrameReader, FrameWriter } from './frames.js';
import { ConnectionClosedError, ProtocolError, ProtokvError } from './errors.js';
import type { Compression, StreamEnd, StreamHandler, TransportStream } from './transport.js';

/** A request waiting for its response. */
export interface ResponseSlot {
  /** Set once the caller has stopped waiting (timed out, aborted): the response is dropped. */
  done: boolean;
  resolve(response: CommandResponse): void;
  reject(err: Error): void;
}

export interface ChannelEvents {
  /** A response that answers no request (a subscription message). */
  onMessage?(response: CommandResponse, size: number): void;
  /** The stream is over; every waiting request has been rejected already. */
  onEnd?(end: StreamEnd, info: { partialFrame: boolean; firstBytes: Uint8Array | undefined }): void;
}

export class FrameChannel implements StreamHandler {
  /** Resolves once the stream has closed; never rejects. */
  readonly closed: Promise<void>;
  /** Responses received so far (to tell a silent server from a slow answer). */
  received = 0;
  readonly #describe: string;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;
  readonly #events: ChannelEvents;
  readonly #pending: ResponseSlot[] = [];
  #head = 0;
  #stream: TransportStream | undefined;
  /** Frames written before the stream was attached. */
  #early: Uint8Array[] = [];
  #end: StreamEnd | undefined;
  #resolveClosed!: () => void;

  constructor(address: string, maxFrameSize: number, compression: Compression, events: ChannelEvents) {
    this.#describe = address;
    this.#events = events;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#reader = new FrameReader(maxFrameSize, compression, (p) => this.#onPayload(p), (err) => this.#abort(err));
    this.#writer = new FrameWriter(compression, (f) => this.#writeFrame(f), (err) => this.#abort(err));
  }

  /** Gives the channel its stream, once the transport has opened it. */
  attach(stream: TransportStream): void {
    this.#stream = stream;
    if (this.#end !== undefined) {
      stream.destroy();
      return;
    }
    for (const f of this.#early) stream.write(f);
    this.#early = [];
  }

  /** Whether the stream has ended. */
  get ended(): boolean {
    return this.#end !== undefined;
  }

  /** Requests waiting for their response (including abandoned ones). */
  get inFlight(): number {
    return this.#pending.length - this.#head;
  }

  /** Sends an encoded `CommandRequest`; `slot` is settled with its response. */
  request(payload: Uint8Array, slot: ResponseSlot): void {
    if (this.#end !== undefined) {
      slot.reject(this.#closedError(this.#end));
      return;
    }
    this.#pending.push(slot);
    this.#writer.push(payload);
  }

  /** Ends our side: the server answers what it has, then closes. */
  end(): void {
    if (this.#end === undefined) this.#stream?.end();
  }

  /** Closes at once; waiting requests fail with `err` (or a `ConnectionClosedError`). */
  destroy(err?: Error): void {
    this.#abort(err ?? new ConnectionClosedError(`the connection to ${this.#describe} was closed`));
  }

  pause(): void {
    this.#stream?.pause();
  }

  resume(): void {
    this.#stream?.resume();
  }

  // --- StreamHandler ---

  onData(chunk: Uint8Array): void {
    this.#reader.push(chunk);
  }

  onClose(end: StreamEnd): void {
    this.#finish(end);
  }

  // --- internals ---

  #writeFrame(frame: Uint8Array): void {
    if (this.#end !== undefined) return;
    if (this.#stream === undefined) this.#early.push(frame);
    else this.#stream.write(frame);
  }

  #onPayload(payload: Uint8Array): void {
    if (this.#end !== undefined) return;
    let response: CommandResponse;
    try {
      response = CommandResponse.decode(payload);
    } catch (err) {
      this.#abort(new ProtocolError(`unreadable response from ${this.#describe}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    this.received++;
    if (this.#head < this.#pending.length) {
      const slot = this.#pending[this.#head];
      this.#pending[this.#head++] = undefined as unknown as ResponseSlot;
      // Compact now and then instead of shifting on every response.
      if (this.#head === this.#pending.length) {
        this.#pending.length = 0;
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
        this.#pending.splice(0, this.#head);
        this.#head = 0;
      }
      if (!slot.done) slot.resolve(response);
      return;
    }
    this.#events.onMessage?.(response, payload.length);
  }

  /** Ends the stream from our side because of `err`. */
  #abort(err: Error): void {
    if (this.#end !== undefined) return;
    this.#finish({ kind: 'lost', error: err });
    this.#stream?.destroy();
  }

  #finish(end: StreamEnd): void {
    if (this.#end !== undefined) return;
    this.#end = end;
    const pending = this.#pending.splice(this.#head);
    this.#pending.length = 0;
    this.#head = 0;
    if (pending.length > 0) {
      const err = this.#closedError(end);
      for (const slot of pending) if (!slot.done) slot.reject(err);
    }
    this.#events.onEnd?.(end, { partialFrame: this.#reader.partial, firstBytes: this.#reader.firstBytes });
    this.#resolveClosed();
  }

  /**
   * What waiting requests fail with: the server's refusal (a status) or a protocol error as it
   * is, anything else as a `ConnectionClosedError` saying the request's fate is unknown.
   */
  #closedError(end: StreamEnd): Error {
    if (end.kind !== 'end' && (end.error instanceof ProtokvError || end.error instanceof ProtocolError)) return end.error;
    const why = end.kind === 'end' ? 'the server closed the connection' : `lost the connection (${end.error.message})`;
    return new ConnectionClosedError(`${why} before answering; the request may or may not have been applied`, {
      cause: end.kind === 'end' ? undefined : end.error,
    });
  }
}
