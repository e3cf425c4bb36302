/**
 * The frame codec of SPEC 1.2 for clients, on plain `Uint8Array`s with compression plugged in
 * (`Compression`), so it runs in Node and in browsers alike. Unlike the server's codec it
 * accepts asynchronous compression (a browser's `CompressionStream`) and keeps frames in order
 * across it.
 */
import {
  COMPRESSION_THRESHOLD,
  FRAME_HEADER_SIZE,
  GZIP_FLAG,
  MAX_ENCODABLE_LENGTH,
} from '../../codec/frame-format.js';
import type { Compression } from './transport.js';
import { asError, ProtocolError } from './errors.js';

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Header and payload in one allocation. */
function frame(payload: Uint8Array, compressed: boolean): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  new DataView(out.buffer).setUint32(0, ((compressed ? GZIP_FLAG : 0) | payload.length) >>> 0);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

/**
 * Frames payloads and hands each frame to `write`, in the order `push` was called, compressing
 * those over the threshold. Frames wait behind one still being compressed.
 */
export class FrameWriter {
  readonly #compression: Compression;
  readonly #write: (frame: Uint8Array) => void;
  readonly #fail: (err: Error) => void;
  /** Set while a compression is pending: later frames chain behind it. */
  #tail: Promise<void> | undefined;

  constructor(compression: Compression, write: (frame: Uint8Array) => void, fail: (err: Error) => void) {
    this.#compression = compression;
    this.#write = write;
    this.#fail = fail;
  }

  push(payload: Uint8Array): void {
    const framed = payload.length > COMPRESSION_THRESHOLD ? this.#compress(payload) : frame(payload, false);
    if (this.#tail === undefined && !isPromise(framed)) {
      this.#write(framed);
      return;
    }
    const tail: Promise<void> = (this.#tail ?? Promise.resolve())
      .then(() => framed)
      .then(
        (f) => this.#write(f),
        (err: unknown) => this.#fail(new ProtocolError(`cannot compress a request: ${(err as Error).message}`, { cause: err })),
      )
      .finally(() => {
        if (this.#tail === tail) this.#tail = undefined;
      });
    this.#tail = tail;
  }

  #compress(payload: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const compressed = this.#compression.gzip(payload);
    const check = (c: Uint8Array): Uint8Array => {
      if (c.length > MAX_ENCODABLE_LENGTH) throw new RangeError(`a request of ${c.length} compressed bytes cannot be framed`);
      return frame(c, true);
    };
    return isPromise(compressed) ? compressed.then(check) : check(compressed);
  }
}

/**
 * Turns received bytes into frame payloads, inflating compressed ones, and hands them to
 * `deliver` in order. A header over `maxFrameSize` (or a payload inflating past it) or a payload
 * that is not gzip calls `fail` once, and the reader ignores everything after.
 */
export class FrameReader {
  readonly #maxFrameSize: number;
  readonly #compression: Compression;
  readonly #deliver: (payload: Uint8Array) => void;
  readonly #fail: (err: Error) => void;
  #chunks: Uint8Array[] = [];
  /** Read offset into `#chunks[0]`. */
  #offset = 0;
  #buffered = 0;
  /** Set while an inflation is pending: later payloads chain behind it. */
  #tail: Promise<void> | undefined;
  #failed = false;
  /** First bytes ever received, kept to recognise a server speaking another protocol. */
  #firstBytes: Uint8Array | undefined;

  constructor(maxFrameSize: number, compression: Compression, deliver: (payload: Uint8Array) => void, fail: (err: Error) => void) {
    this.#maxFrameSize = maxFrameSize;
    this.#compression = compression;
    this.#deliver = deliver;
    this.#fail = fail;
  }

  /** Bytes of an unfinished frame are buffered (the stream ended mid-frame if it ends now). */
  get partial(): boolean {
    return this.#buffered > 0;
  }

  /** The first bytes received (up to 16), or undefined before any. */
  get firstBytes(): Uint8Array | undefined {
    return this.#firstBytes;
  }

  push(chunk: Uint8Array): void {
    if (this.#failed || chunk.length === 0) return;
    this.#firstBytes ??= chunk.slice(0, 16);
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (!this.#failed && this.#buffered >= FRAME_HEADER_SIZE) {
      const header = this.#peekHeader();
      const length = header & MAX_ENCODABLE_LENGTH;
      if (length > this.#maxFrameSize) {
        this.#failWith(new ProtocolError(`the server sent a frame of ${length} bytes, over the maximum of ${this.#maxFrameSize} (maxFrameSize)`));
        return;
      }
      if (this.#buffered < FRAME_HEADER_SIZE + length) return;
      this.#skip(FRAME_HEADER_SIZE);
      const payload = this.#take(length);
      if ((header & GZIP_FLAG) === 0) this.#emit(payload);
      else this.#emit(this.#inflate(payload));
    }
  }

  #inflate(payload: Uint8Array): Uint8Array | Promise<Uint8Array> {
    try {
      return this.#compression.gunzip(payload, this.#maxFrameSize);
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  #emit(payload: Uint8Array | Promise<Uint8Array>): void {
    if (this.#tail === undefined && !isPromise(payload)) {
      this.#deliver(payload);
      return;
    }
    const tail: Promise<void> = (this.#tail ?? Promise.resolve())
      .then(() => payload)
      .then(
        (p) => {
          if (!this.#failed) this.#deliver(p);
        },
        (err: unknown) => this.#failWith(new ProtocolError(`a compressed response could not be inflated: ${(err as Error).message}`, { cause: err })),
      )
      .finally(() => {
        if (this.#tail === tail) this.#tail = undefined;
      });
    this.#tail = tail;
  }

  #failWith(err: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#chunks = [];
    this.#buffered = 0;
    this.#fail(err);
  }

  #peekHeader(): number {
    const first = this.#chunks[0];
    if (first.length - this.#offset >= FRAME_HEADER_SIZE) {
      return new DataView(first.buffer, first.byteOffset + this.#offset, FRAME_HEADER_SIZE).getUint32(0);
    }
    let header = 0;
    let chunk = 0;
    let pos = this.#offset;
    for (let i = 0; i < FRAME_HEADER_SIZE; i++) {
      while (pos >= this.#chunks[chunk].length) {
        chunk++;
        pos = 0;
      }
      header = header * 256 + this.#chunks[chunk][pos++];
    }
    return header;
  }

  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const first = this.#chunks[0];
      const available = first.length - this.#offset;
      if (n < available) {
        this.#offset += n;
        return;
      }
      n -= available;
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  /** `n` bytes: a view when they sit in one chunk, else one copy. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (n === 0 || first === undefined) return new Uint8Array(0);
    if (n <= first.length - this.#offset) {
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return out;
    }
    const out = new Uint8Array(n);
    let written = 0;
    while (written < n) {
      const chunk = this.#chunks[0];
      const count = Math.min(chunk.length - this.#offset, n - written);
      out.set(chunk.subarray(this.#offset, this.#offset + count), written);
      written += count;
      this.#skip(count);
    }
    return out;
  }
}
