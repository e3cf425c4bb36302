/**
 * The reply writer: encodes RESP2 or RESP3 replies straight into output buffers.
 *
 * Replies are appended to a slab (grown by doubling, up to 64 KiB, or exactly sized for a large
 * bulk); {@link ReplyWriter.take} hands the bytes written since the last call to the socket as
 * views of the slab, without copying, and later replies continue in the slab's free space. The
 * same calls produce RESP2 or RESP3: `map`, `set`, `push`, `null`, `double` and `bool` pick
 * the right form for {@link ReplyWriter.protocol}.
 */
import type { Value } from '../protocol/generated/abi.js';
import { encodeName, nameByteLength } from './names.js';
import { formatFloat } from './values.js';

const MIN_SLAB = 512;
const MAX_SLAB = 64 * 1024;
/** Bulk payloads at least this big get a buffer of their own, referenced rather than copied. */
const BIG_BULK = 16 * 1024;

/** RESP protocol version of a connection. */
export type Protocol = 2 | 3;

export class ReplyWriter {
  protocol: Protocol = 2;
  /** Error replies written so far (the connection counts failed calls with it). */
  errors = 0;
  /** Told the text of every error reply (for INFO errorstats). */
  onError: ((text: string) => void) | undefined;
  #slab: Buffer = Buffer.alloc(0);
  #pos = 0;
  /** Start of the bytes not yet taken. */
  #start = 0;
  /** Finished pieces not yet taken, in order, before `#slab[#start, #pos)`. */
  #done: Buffer[] = [];
  #doneBytes = 0;

  /** Bytes written and not yet taken. */
  get size(): number {
    return this.#doneBytes + this.#pos - this.#start;
  }

  /** Returns the bytes written since the last call (empty array when none), as views. */
  take(): Buffer[] {
    const out = this.#done;
    if (this.#pos > this.#start) out.push(this.#slab.subarray(this.#start, this.#pos));
    this.#done = [];
    this.#doneBytes = 0;
    this.#start = this.#pos;
    return out;
  }

  /** A position to {@link truncate} back to (discarding a reply that must not be sent). */
  mark(): number {
    return this.size;
  }

  /** Discards everything written after `mark`. */
  truncate(mark: number): void {
    let excess = this.size - mark;
    if (excess <= 0) return;
    const inSlab = this.#pos - this.#start;
    const fromSlab = Math.min(excess, inSlab);
    this.#pos -= fromSlab;
    excess -= fromSlab;
    while (excess > 0) {
      const last = this.#done.pop()!;
      this.#doneBytes -= last.length;
      if (last.length > excess) {
        const kept = last.subarray(0, last.length - excess);
        this.#done.push(kept);
        this.#doneBytes += kept.length;
        excess = 0;
      } else {
        excess -= last.length;
      }
    }
  }

  // --- replies ---

  /** `+text` (text must hold no CR or LF). */
  simple(text: string): void {
    this.#ascii('+', text);
  }

  /** `-text`; CR and LF in it become spaces, as Redis does. */
  error(text: string): void {
    this.errors++;
    this.onError?.(text);
    this.#utf8Line('-', /[\r\n]/.test(text) ? text.replace(/[\r\n]/g, ' ') : text);
  }

  ok(): void {
    this.#raw(OK);
  }

  integer(n: number | bigint): void {
    if (n === 0) this.#raw(ZERO);
    else if (n === 1) this.#raw(ONE);
    else this.#ascii(':', String(n));
  }

  /** A bulk string from a JavaScript string (UTF-8). */
  bulkString(text: string): void {
    const len = Buffer.byteLength(text, 'utf8');
    this.#header('$', len);
    this.#reserve(len + 2);
    this.#pos += this.#slab.utf8Write(text, this.#pos, len);
    this.#crlf();
  }

  /** A bulk string of a name (see names.ts): its original bytes, escaped ones restored. */
  bulkName(name: string): void {
    if (name.isWellFormed()) {
      this.bulkString(name);
      return;
    }
    const len = nameByteLength(name);
    this.#header('$', len);
    this.#bytes(encodeName(name));
    this.#crlf();
  }

  /** A bulk string of raw bytes. */
  bulk(bytes: Uint8Array): void {
    this.#header('$', bytes.length);
    this.#bytes(bytes);
    this.#crlf();
  }

  /** A bulk string of `buf[start, end)`. */
  bulkRange(buf: Buffer, start: number, end: number): void {
    this.bulk(buf.subarray(start, end));
  }

  /** A value rendered as a bulk string (see values.ts); `undefined` is null. */
  bulkValue(value: Value | undefined): void {
    if (value === undefined) {
      this.null();
      return;
    }
    const inner = value.value;
    if (inner === undefined) {
      this.#raw(EMPTY_BULK);
      return;
    }
    switch (inner.$case) {
      case 'string':
        this.bulkString(inner.value);
        return;
      case 'binary':
        this.bulk(inner.value);
        return;
      case 'integer':
        this.bulkString(inner.value.toString());
        return;
      case 'float':
        this.bulkString(formatFloat(inner.value));
        return;
      case 'bool':
        this.bulkString(inner.value ? 'true' : 'false');
        return;
    }
  }

  /** RESP3 verbatim string (`=len\r\ntxt:…`), a bulk string in RESP2. */
  verbatim(text: string, format = 'txt'): void {
    if (this.protocol === 2) {
      this.bulkString(text);
      return;
    }
    const body = `${format}:${text}`;
    const len = Buffer.byteLength(body, 'utf8');
    this.#header('=', len);
    this.#reserve(len + 2);
    this.#pos += this.#slab.utf8Write(body, this.#pos, len);
    this.#crlf();
  }

  /** The null reply: `$-1` in RESP2, `_` in RESP3. */
  null(): void {
    this.#raw(this.protocol === 2 ? NULL_BULK : NULL3);
  }

  /** The null array: `*-1` in RESP2, `_` in RESP3. */
  nullArray(): void {
    this.#raw(this.protocol === 2 ? NULL_ARRAY : NULL3);
  }

  array(n: number): void {
    this.#header('*', n);
  }

  /** A map of `n` pairs: `%n` in RESP3, an array of 2n in RESP2. */
  map(n: number): void {
    if (this.protocol === 2) this.#header('*', n * 2);
    else this.#header('%', n);
  }

  /** A set: `~n` in RESP3, an array in RESP2. */
  set(n: number): void {
    this.#header(this.protocol === 2 ? '*' : '~', n);
  }

  /** An out-of-band push: `>n` in RESP3, an array in RESP2. */
  push(n: number): void {
    this.#header(this.protocol === 2 ? '*' : '>', n);
  }

  /** A double: `,x` in RESP3, a bulk string in RESP2. */
  double(x: number): void {
    const text = formatFloat(x);
    if (this.protocol === 2) this.bulkString(text);
    else this.#ascii(',', text);
  }

  /** A boolean: `#t`/`#f` in RESP3, `:1`/`:0` in RESP2. */
  bool(b: boolean): void {
    if (this.protocol === 2) this.integer(b ? 1 : 0);
    else this.#raw(b ? TRUE3 : FALSE3);
  }

  /** Bytes already encoded as RESP. */
  raw(bytes: Uint8Array): void {
    this.#raw(bytes);
  }

  // --- internals ---

  #raw(bytes: Uint8Array): void {
    this.#bytes(bytes);
  }

  #bytes(bytes: Uint8Array): void {
    const len = bytes.length;
    if (len >= BIG_BULK) {
      // Referenced, not copied.
      this.#seal();
      this.#done.push(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, len));
      this.#doneBytes += len;
      return;
    }
    this.#reserve(len);
    this.#slab.set(bytes, this.#pos);
    this.#pos += len;
  }

  #crlf(): void {
    this.#reserve(2);
    this.#slab[this.#pos++] = 0x0d;
    this.#slab[this.#pos++] = 0x0a;
  }

  #header(prefix: string, n: number): void {
    this.#ascii(prefix, String(n));
  }

  /** `prefix text \r\n` for ASCII text. */
  #ascii(prefix: string, text: string): void {
    const len = text.length + 3;
    this.#reserve(len);
    const slab = this.#slab;
    let p = this.#pos;
    slab[p++] = prefix.charCodeAt(0);
    p += slab.latin1Write(text, p, text.length);
    slab[p++] = 0x0d;
    slab[p++] = 0x0a;
    this.#pos = p;
  }

  #utf8Line(prefix: string, text: string): void {
    const len = Buffer.byteLength(text, 'utf8');
    this.#reserve(len + 3);
    this.#slab[this.#pos++] = prefix.charCodeAt(0);
    this.#pos += this.#slab.utf8Write(text, this.#pos, len);
    this.#crlf();
  }

  /** Ensures `n` free bytes in the slab, starting a new one when needed. */
  #reserve(n: number): void {
    if (this.#slab.length - this.#pos >= n) return;
    this.#seal();
    let size = Math.max(MIN_SLAB, Math.min(MAX_SLAB, this.#slab.length * 2));
    if (size < n) size = n;
    this.#slab = Buffer.allocUnsafe(size);
    this.#pos = 0;
    this.#start = 0;
  }

  /** Moves the untaken part of the slab into `#done` so that new bytes can go elsewhere. */
  #seal(): void {
    if (this.#pos > this.#start) {
      this.#done.push(this.#slab.subarray(this.#start, this.#pos));
      this.#doneBytes += this.#pos - this.#start;
      this.#start = this.#pos;
    }
  }
}

const OK = Buffer.from('+OK\r\n');
const ZERO = Buffer.from(':0\r\n');
const ONE = Buffer.from(':1\r\n');
const EMPTY_BULK = Buffer.from('$0\r\n\r\n');
const NULL_BULK = Buffer.from('$-1\r\n');
const NULL_ARRAY = Buffer.from('*-1\r\n');
const NULL3 = Buffer.from('_\r\n');
const TRUE3 = Buffer.from('#t\r\n');
const FALSE3 = Buffer.from('#f\r\n');
