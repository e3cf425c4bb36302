/**
 * The frame codec (SPEC 1.2): a u32 big-endian header whose bit 31 marks a gzip payload and
 * whose low 31 bits give the payload length, then the payload. Pure functions and a decoder
 * with no I/O, so every transport shares them and tests can split input at every byte.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { KvError } from '../errors.js';
import { errors } from '../errors.js';
import {
  COMPRESSION_THRESHOLD,
  DEFAULT_MAX_FRAME_SIZE,
  FRAME_HEADER_SIZE as HEADER_SIZE,
  GZIP_FLAG as GZIP_BIT,
  MAX_ENCODABLE_LENGTH,
} from './frame-format.js';

export { COMPRESSION_THRESHOLD, DEFAULT_MAX_FRAME_SIZE, MAX_ENCODABLE_LENGTH } from './frame-format.js';

/**
 * Frames an encoded message: small payloads are copied once behind the header, large ones are
 * gzip-compressed first.
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

  /** The next complete payload (inflated if it was compressed), or `undefined` if none is whole yet. */
  next(): Buffer | undefined {
    if (this.#failed) throw this.#failed;
    if (this.#buffered < HEADER_SIZE) return undefined;
    const header = this.#peekHeader();
    const length = header & MAX_ENCODABLE_LENGTH;
    if (length > this.maxFrameSize) return this.#fail(errors.frameTooLarge(length, this.maxFrameSize));
    if (this.#buffered < HEADER_SIZE + length) return undefined;
    this.#skip(HEADER_SIZE);
    const payload = this.#take(length);
    if ((header & GZIP_BIT) === 0) return payload;
    return this.#inflate(payload);
  }

  #inflate(payload: Buffer): Buffer {
    try {
      return gunzipSync(payload, { maxOutputLength: this.maxFrameSize });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        return this.#fail(errors.frameTooLarge(this.maxFrameSize + 1, this.maxFrameSize));
      }
      throw errors.malformedFrame('compressed payload is not valid gzip', err);
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
