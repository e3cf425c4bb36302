/**
 * The frame codec (SPEC 1.2): a u32 big-endian header whose bit 31 marks a gzip payload and
 * whose low 31 bits give the payload length, then the payload. Pure functions and a decoder
 * with no I/O, so every transport shares them and tests can split input at every byte.
 */
import { gzipSync } from 'node:zlib';
import { errors, KvError } from '../errors.js';
import {
  COMPRESSION_THRESHOLD,
  DEFAULT_MAX_FRAME_SIZE,
  FRAME_HEADER_SIZE as HEADER_SIZE,
  GZIP_FLAG as GZIP_BIT,
  MAX_ENCODABLE_LENGTH,
} from './frame-format.js';
import { compress, inflateSync } from './compression.js';

// The format's constants live in frame-format.ts, which clients share without Node's zlib.
export { COMPRESSION_THRESHOLD, DEFAULT_MAX_FRAME_SIZE, MAX_ENCODABLE_LENGTH } from './frame-format.js';
/** Bytes of a frame header. */
export { FRAME_HEADER_SIZE as HEADER_SIZE } from './frame-format.js';
/** A frame as received: its payload exactly as sent, and whether that payload is gzip. */
export interface ReceivedFrame {
  readonly payload: Buffer;
  readonly compressed: boolean;
}

/** The frame header for a payload of `length` bytes. */
export function frameHeader(length: number, compressed = false): Buffer {
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  header.writeUInt32BE(((compressed ? GZIP_BIT : 0) | length) >>> 0, 0);
  return header;
}

/**
 * Frames an encoded message: small payloads are copied once behind the header, large ones are
 * gzip-compressed first (on the calling thread: see `compressFrame` for big payloads).
 */
export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > COMPRESSION_THRESHOLD) {
    const compressed = gzipSync(payload);
    const frame = Buffer.allocUnsafe(HEADER_SIZE + compressed.length);
    frame.writeUInt32BE((GZIP_BIT | compressed.length) >>> 0, 0);
    compressed.copy(frame, HEADER_SIZE);
    return frame;
  }
  const frame = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, HEADER_SIZE);
  return frame;
}

/**
 * Compresses `payload` (one buffer, or pieces of one payload) in the thread pool and resolves to
 * the frame as pieces — header, then the compressed body in the chunks it was produced in — so
 * neither the payload nor the body is ever joined or copied.
 */
export async function compressFrame(payload: Uint8Array | readonly Uint8Array[]): Promise<Buffer[]> {
  const body = await compress(payload);
  let length = 0;
  for (const chunk of body) length += chunk.length;
  return [frameHeader(length, true), ...body];
}

/**
 * Turns a byte stream into frame payloads. Feed it chunks with `push`, then call `next` until it
 * returns `undefined`. Payloads of frames that arrived whole in one chunk are zero-copy views of
 * that chunk.
 *
 * `next` throws a `KvError`:
 * - `MALFORMED_FRAME` (400) for a gzip payload that does not inflate: that frame is consumed and
 *   decoding continues with the next one;
 * - `FRAME_TOO_LARGE` (413) for a header over the maximum, or a payload that inflates past it:
 *   the length is checked before anything is buffered, and the decoder is unusable afterwards
 *   because framing is lost.
 */
/** `FrameDecoder.nextFrameInPlace` results. */
export const NO_FRAME = -1;
export const PLAIN_FRAME = 0;
export const COMPRESSED_FRAME = 1;
const EMPTY = Buffer.alloc(0);

export class FrameDecoder {
  readonly maxFrameSize: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Read offset into `#chunks[0]`. */
  #offset = 0;
  #failed: KvError | undefined;

  constructor(maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    if (!Number.isInteger(maxFrameSize) || maxFrameSize < 1 || maxFrameSize > MAX_ENCODABLE_LENGTH) {
      throw new RangeError(`maxFrameSize must be an integer from 1 to ${MAX_ENCODABLE_LENGTH}`);
    }
    this.maxFrameSize = maxFrameSize;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * Bytes the buffered input will take once the frame at its head is complete: the whole frame
   * when its header has arrived (and it fits the maximum), else what is buffered. Lets a caller
   * budget for a frame before its bytes arrive, without allocating anything for it.
   */
  get frameBytesExpected(): number {
    if (this.#failed || this.#buffered < HEADER_SIZE) return this.#buffered;
    const length = this.#peekHeader() & MAX_ENCODABLE_LENGTH;
    return length > this.maxFrameSize ? this.#buffered : Math.max(this.#buffered, HEADER_SIZE + length);
  }

  /** Whether a complete frame (or a header over the maximum) is buffered: `nextFrame` would not return `undefined`. */
  hasFrame(): boolean {
    if (this.#failed) return false;
    if (this.#buffered < HEADER_SIZE) return false;
    const length = this.#peekHeader() & MAX_ENCODABLE_LENGTH;
    return length > this.maxFrameSize || this.#buffered >= HEADER_SIZE + length;
  }

  /** The next complete payload (inflated if it was compressed), or `undefined` if none is whole yet. */
  next(): Buffer | undefined {
    const frame = this.nextFrame();
    if (frame === undefined || !frame.compressed) return frame?.payload;
    try {
      return inflateSync(frame.payload, this.maxFrameSize);
    } catch (err) {
      if (err instanceof KvError && err.code === 'FRAME_TOO_LARGE') this.fail(err);
      throw err;
    }
  }

  /**
   * The next complete frame as received (still compressed if it was), or `undefined` if none is
   * whole yet. Inflate it with `inflate`; a payload that inflates past the maximum loses framing
   * as surely as an oversize header, so call `fail` with that error.
   */
  nextFrame(): ReceivedFrame | undefined {
    const flags = this.nextFrameInPlace();
    if (flags === NO_FRAME) return undefined;
    return { payload: this.payloadBuffer.subarray(this.payloadStart, this.payloadEnd), compressed: flags === COMPRESSED_FRAME };
  }

  /** Where `nextFrameInPlace` left the last payload: bytes `[payloadStart, payloadEnd)` of `payloadBuffer`. */
  payloadBuffer: Buffer = EMPTY;
  payloadStart = 0;
  payloadEnd = 0;

  /**
   * `nextFrame` without allocating anything for a frame that arrived whole in one chunk (the
   * server's hot path: several pipelined frames per chunk). Returns `NO_FRAME` when no whole
   * frame is buffered, else `PLAIN_FRAME` or `COMPRESSED_FRAME`, leaving the payload at
   * `payloadBuffer[payloadStart, payloadEnd)` — valid until the input is reused, like a view.
   */
  nextFrameInPlace(): number {
    if (this.#failed) throw this.#failed;
    if (this.#buffered < HEADER_SIZE) return NO_FRAME;
    const header = this.#peekHeader();
    const length = header & MAX_ENCODABLE_LENGTH;
    if (length > this.maxFrameSize) return this.#fail(errors.frameTooLarge(length, this.maxFrameSize));
    if (this.#buffered < HEADER_SIZE + length) return NO_FRAME;
    this.#skip(HEADER_SIZE);
    const first = this.#chunks[0];
    if (length > 0 && first.length - this.#offset >= length) {
      this.payloadBuffer = first;
      this.payloadStart = this.#offset;
      this.payloadEnd = this.#offset + length;
      this.#skip(length);
    } else {
      const payload = this.#take(length);
      this.payloadBuffer = payload;
      this.payloadStart = 0;
      this.payloadEnd = payload.length;
    }
    return (header & GZIP_BIT) !== 0 ? COMPRESSED_FRAME : PLAIN_FRAME;
  }

  /** Marks the stream as unreadable (framing lost) and drops what is buffered. */
  fail(err: KvError): void {
    if (this.#failed) return;
    try {
      this.#fail(err);
    } catch {
      // #fail throws for the callers of next(); here the caller already has the error.
    }
  }

  #fail(err: KvError): never {
    this.#failed = err;
    this.#chunks = [];
    this.#buffered = 0;
    this.#offset = 0;
    throw err;
  }

  #peekHeader(): number {
    const first = this.#chunks[0];
    if (first.length - this.#offset >= HEADER_SIZE) return first.readUInt32BE(this.#offset);
    let header = 0;
    let chunk = 0;
    let pos = this.#offset;
    for (let i = 0; i < HEADER_SIZE; i++) {
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

  #take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first === undefined || n === 0) return Buffer.alloc(0);
    const available = first.length - this.#offset;
    if (n <= available) {
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const chunk = this.#chunks[0];
      const count = Math.min(chunk.length - this.#offset, n - written);
      chunk.copy(out, written, this.#offset, this.#offset + count);
      written += count;
      this.#skip(count);
    }
    return out;
  }
}
