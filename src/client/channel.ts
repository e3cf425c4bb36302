/**
 * A request/response channel over one stream: requests are written as frames, responses are
 * matched to them in order (the server answers in order), so any number can be in flight.
 * Writes issued in the same tick go out together.
 */
import type { Duplex } from 'node:stream';
import type { CommandRequest, CommandResponse } from '../protocol/generated/abi.js';
import { encodeFrame, FrameDecoder, DEFAULT_MAX_FRAME_SIZE } from '../codec/frame.js';
import { decodeResponse, encodeRequest } from '../protocol/wire.js';
import { ConnectionClosedError, ProtocolError } from './errors.js';

interface Pending {
  resolve(response: CommandResponse): void;
  reject(err: Error): void;
}

export class Channel {
  readonly stream: Duplex;
  /** Resolves once the stream has closed; never rejects. */
  readonly closed: Promise<void>;
  readonly #decoder: FrameDecoder;
  readonly #pending: Pending[] = [];
  #head = 0;
  #corked = false;
  #error: Error | undefined;
  /** Receives responses nobody asked for (subscription messages). */
  onUnsolicited: ((response: CommandResponse) => void) | undefined;

  constructor(stream: Duplex, maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.stream = stream;
    this.#decoder = new FrameDecoder(maxFrameSize);
    this.closed = new Promise((resolve) => stream.once('close', () => resolve()));
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('error', (err) => this.#fail(err));
    stream.once('end', () => {
      this.#fail(new ConnectionClosedError('the server closed the connection'));
      // Finish our side too, so a half-closed stream (a yamux stream, say) is fully released.
      if (!stream.writableEnded) stream.end();
    });
    stream.once('close', () => this.#fail(new ConnectionClosedError('the connection is closed')));
  }

  /** Number of requests awaiting their response. */
  get inFlight(): number {
    return this.#pending.length - this.#head;
  }

  /** Sends a request; resolves with its response (whatever its status). */
  request(request: CommandRequest): Promise<CommandResponse> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      this.send(request);
    });
  }

  /** Writes a request without waiting for an answer. */
  send(request: CommandRequest): void {
    if (!this.#corked) {
      this.#corked = true;
      this.stream.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.stream.uncork();
      });
    }
    this.stream.write(encodeFrame(encodeRequest(request)));
  }

  /** Ends our side of the stream; pending requests still get their answers. */
  end(): void {
    this.stream.end();
  }

  destroy(err?: Error): void {
    this.#fail(err ?? new ConnectionClosedError('the connection is closed'));
    this.stream.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#decoder.push(chunk);
    for (;;) {
      let payload: Buffer | undefined;
      let response: CommandResponse;
      try {
        payload = this.#decoder.next();
        if (payload === undefined) return;
        response = decodeResponse(payload);
      } catch (err) {
        this.destroy(new ProtocolError(`unreadable response from the server: ${(err as Error).message}`));
        return;
      }
      this.#dispatch(response);
    }
  }

  #dispatch(response: CommandResponse): void {
    if (this.#head < this.#pending.length) {
      const p = this.#pending[this.#head];
      this.#pending[this.#head++] = undefined as unknown as Pending;
      // Compact now and then instead of shifting on every response.
      if (this.#head === this.#pending.length) {
        this.#pending.length = 0;
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
        this.#pending.splice(0, this.#head);
        this.#head = 0;
      }
      p.resolve(response);
    } else if (this.onUnsolicited !== undefined) {
      this.onUnsolicited(response);
    }
  }

  #fail(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    const pending = this.#pending.splice(this.#head);
    this.#pending.length = 0;
    this.#head = 0;
    for (const p of pending) p.reject(err);
  }
}
