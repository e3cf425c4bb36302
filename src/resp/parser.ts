/**
 * The RESP request parser: bytes in, commands out, incrementally across any split of the input.
 *
 * It accepts what Redis 7.0 accepts — multibulk requests (`*N\r\n$len\r\n…`) and inline commands
 * (a line of space-separated words, with Redis's quoting rules) — and fails with Redis's protocol
 * error texts. Arguments are not copied out of the input: each is a (buffer, start, end) range,
 * and the {@link Args} object holding them is reused for every command, so a handler must take
 * what it needs before the next command is parsed.
 *
 * Input held while a request is incomplete is only what has arrived; pieces are joined once,
 * when the element they complete has fully arrived (a slow drip costs no quadratic copying).
 */

/** Longest inline command, and longest `*`/`$` header line, Redis accepts (PROTO_INLINE_MAX_SIZE). */
export const MAX_INLINE_SIZE = 64 * 1024;
/** Most arguments one command may have. */
export const MAX_ARGUMENTS = 1024 * 1024;

/** A request the parser cannot make sense of; the connection answers `-ERR <message>` and closes. */
export class RespProtocolError extends Error {
  constructor(detail: string) {
    super(`Protocol error: ${detail}`);
    this.name = 'RespProtocolError';
  }
}

/** The arguments of one command, as ranges of input buffers. Reused: valid until the next command. */
export class Args {
  count = 0;
  bufs: Buffer[] = [];
  starts: number[] = [];
  ends: number[] = [];
  /** Bytes the command took on the wire (for CLIENT LIST's qbuf). */
  wireBytes = 0;

  push(buf: Buffer, start: number, end: number): void {
    const i = this.count++;
    this.bufs[i] = buf;
    this.starts[i] = start;
    this.ends[i] = end;
  }

  /** Forgets the previous command; big argument arrays are released rather than kept. */
  reset(): void {
    if (this.bufs.length > 4096) {
      this.bufs = [];
      this.starts = [];
      this.ends = [];
    } else {
      // Drop references so that the input buffers can be collected.
      for (let i = 0; i < this.count; i++) this.bufs[i] = EMPTY;
    }
    this.count = 0;
    this.wireBytes = 0;
  }

  length(i: number): number {
    return this.ends[i] - this.starts[i];
  }

  /** Argument `i` as a Buffer view (no copy). */
  view(i: number): Buffer {
    return this.bufs[i].subarray(this.starts[i], this.ends[i]);
  }

  /** Argument `i` decoded as Latin-1 (for keywords and numbers, which are ASCII). */
  latin1(i: number): string {
    return this.bufs[i].latin1Slice(this.starts[i], this.ends[i]);
  }

  /** Argument `i` lower-cased, when it is at most `max` bytes; else `undefined` (keyword matching). */
  keyword(i: number, max = 32): string | undefined {
    if (this.ends[i] - this.starts[i] > max) return undefined;
    return this.latin1(i).toLowerCase();
  }

  /** Whether argument `i` equals the ASCII keyword `word` (lower case), ignoring case. */
  is(i: number, word: string): boolean {
    const buf = this.bufs[i];
    const start = this.starts[i];
    if (this.ends[i] - start !== word.length) return false;
    for (let j = 0; j < word.length; j++) {
      let c = buf[start + j];
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      if (c !== word.charCodeAt(j)) return false;
    }
    return true;
  }
}

const EMPTY = Buffer.alloc(0);
const NONE = 0;
const INLINE = 1;
const MULTIBULK = 2;
const CR = 0x0d;
const LF = 0x0a;

export interface ParserLimits {
  /** Largest bulk argument, in bytes (Redis's proto-max-bulk-len). */
  maxBulkLength: number;
  /** Largest whole request, in bytes. */
  maxRequestBytes: number;
}

export class RespParser {
  readonly args = new Args();
  readonly #limits: ParserLimits;
  /** Unparsed input: `#buf[#pos…]` followed by `#parts`. */
  #buf: Buffer = EMPTY;
  #pos = 0;
  #parts: Buffer[] = [];
  #partsBytes = 0;
  /** Bytes after `#pos` known not to hold `#scannedFor` (see `#find`). */
  #scanned = 0;
  #scannedFor = -1;
  /** Arguments still expected by the multibulk request being read; 0 when between requests. */
  #remaining = 0;
  /** Length of the bulk argument being read; -1 while its `$` header is still to come. */
  #bulkLength = -1;
  /** Bytes the current request has used so far (for the size limit and CLIENT LIST). */
  #requestBytes = 0;
  /** What the request being parsed is: none yet, inline or multibulk. */
  #kind = NONE;

  constructor(limits: ParserLimits) {
    this.#limits = limits;
  }

  /** Adds received bytes. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.#parts.length === 0 && this.#pos >= this.#buf.length) {
      this.#buf = chunk;
      this.#pos = 0;
    } else {
      this.#parts.push(chunk);
      this.#partsBytes += chunk.length;
    }
  }

  /** Input bytes held, parsed or not, that no finished command has consumed. */
  get buffered(): number {
    return this.#buf.length - this.#pos + this.#partsBytes;
  }

  /** Whether a request has begun and not all of it has arrived. */
  get incomplete(): boolean {
    return this.#kind !== NONE;
  }

  /**
   * Bytes the input held now will need once the request in progress is complete: what is
   * buffered, the arguments of that request already parsed, and the rest of the bulk argument
   * being received (its length is announced before it arrives).
   */
  get expectedBytes(): number {
    let bytes = this.buffered;
    if (this.#kind === MULTIBULK) {
      bytes += this.#requestBytes;
      if (this.#bulkLength >= 0) bytes += Math.max(0, this.#bulkLength + 2 - this.buffered);
    }
    return bytes;
  }

  /**
   * Parses the next command into {@link args}. Returns false when more input is needed.
   * Throws {@link RespProtocolError} on a malformed request; the parser is then unusable.
   */
  next(): boolean {
    for (;;) {
      if (this.#kind === NONE) {
        if (this.#available() === 0) return false;
        this.args.reset();
        this.#requestBytes = 0;
        this.#kind = this.#peek() === 0x2a /* '*' */ ? MULTIBULK : INLINE;
      }
      if (this.#kind === INLINE) {
        if (!this.#inline()) return false;
        this.#kind = NONE;
        if (this.args.count === 0) continue; // an empty line is ignored
        return true;
      }
      if (this.#remaining === 0) {
        const line = this.#line('too big mbulk count string');
        if (line === undefined) return false;
        const count = parseLength(this.#buf, line.start + 1, line.end);
        if (count === undefined || count > MAX_ARGUMENTS) throw new RespProtocolError('invalid multibulk length');
        if (count <= 0) {
          // `*0` and negative counts are empty requests.
          this.#kind = NONE;
          continue;
        }
        this.#remaining = count;
      }
      while (this.#remaining > 0) {
        if (this.#bulkLength < 0) {
          const line = this.#line('too big bulk count string');
          if (line === undefined) return false;
          const buf = this.#buf;
          if (buf[line.start] !== 0x24 /* '$' */) {
            throw new RespProtocolError(`expected '$', got '${String.fromCharCode(buf[line.start])}'`);
          }
          const len = parseLength(buf, line.start + 1, line.end);
          if (len === undefined || len < 0 || len > this.#limits.maxBulkLength) throw new RespProtocolError('invalid bulk length');
          this.#bulkLength = len;
          this.#checkSize(len + 2);
        }
        const need = this.#bulkLength + 2;
        if (this.#available() < need) return false;
        this.#join(need);
        const start = this.#pos;
        this.args.push(this.#buf, start, start + this.#bulkLength);
        // Like Redis, the two bytes after the payload are skipped, not checked.
        this.#consume(need);
        this.#requestBytes += need;
        this.#bulkLength = -1;
        this.#remaining--;
      }
      this.#kind = NONE;
      this.args.wireBytes = this.#requestBytes;
      return true;
    }
  }

  #available(): number {
    return this.#buf.length - this.#pos + this.#partsBytes;
  }

  #peek(): number {
    return this.#pos < this.#buf.length ? this.#buf[this.#pos] : this.#parts[0][0];
  }

  /**
   * Finds the next `\r…\n`-terminated header line (Redis looks for the `\r` and skips one more
   * byte). Returns its bounds in `#buf` (without the terminator) and consumes it, or `undefined`
   * when it has not fully arrived.
   */
  #line(tooBig: string): { start: number; end: number } | undefined {
    const offset = this.#find(CR);
    if (offset < 0) {
      if (this.#available() > MAX_INLINE_SIZE) throw new RespProtocolError(tooBig);
      return undefined;
    }
    if (this.#available() < offset + 2) return undefined;
    this.#join(offset + 2);
    const start = this.#pos;
    this.#consume(offset + 2);
    this.#requestBytes += offset + 2;
    this.#checkSize(0);
    return { start, end: start + offset };
  }

  /** An inline command: one line, split into words. Returns false until the line has arrived. */
  #inline(): boolean {
    const offset = this.#find(LF);
    if (offset < 0) {
      if (this.#available() > MAX_INLINE_SIZE) throw new RespProtocolError('too big inline request');
      return false;
    }
    this.#join(offset + 1);
    const start = this.#pos;
    let end = start + offset;
    if (end > start && this.#buf[end - 1] === CR) end--;
    this.#consume(offset + 1);
    this.args.wireBytes = offset + 1;
    const words = splitInline(this.#buf, start, end);
    if (words === undefined) throw new RespProtocolError('unbalanced quotes in request');
    for (const w of words) this.args.push(w, 0, w.length);
    return true;
  }

  /**
   * Offset from `#pos` of the first `byte` in the unparsed input, or -1. Bytes already searched
   * for the same byte are not searched again, so input arriving a byte at a time costs linear time.
   */
  #find(byte: number): number {
    if (this.#scannedFor !== byte) {
      this.#scannedFor = byte;
      this.#scanned = 0;
    }
    const buf = this.#buf;
    const head = buf.length - this.#pos;
    let offset = this.#scanned;
    if (offset < head) {
      const i = buf.indexOf(byte, this.#pos + offset);
      if (i >= 0) return i - this.#pos;
      offset = head;
    }
    let base = head;
    for (const part of this.#parts) {
      if (offset < base + part.length) {
        const i = part.indexOf(byte, offset - base);
        if (i >= 0) return base + i;
        offset = base + part.length;
      }
      base += part.length;
    }
    this.#scanned = offset;
    return -1;
  }

  #consume(n: number): void {
    this.#pos += n;
    this.#scanned = 0;
  }

  /** Makes the next `n` unparsed bytes contiguous in `#buf` (joining the pending pieces once). */
  #join(n: number): void {
    if (this.#buf.length - this.#pos >= n) return;
    const pieces = [this.#buf.subarray(this.#pos), ...this.#parts];
    this.#buf = Buffer.concat(pieces, this.#buf.length - this.#pos + this.#partsBytes);
    this.#pos = 0;
    this.#parts = [];
    this.#partsBytes = 0;
  }

  #checkSize(more: number): void {
    const max = this.#limits.maxRequestBytes;
    if (this.#requestBytes + more > max) throw new RespProtocolError(`request larger than ${max} bytes`);
  }
}

/** A `*`/`$` count under `string2ll` rules; `undefined` when it is not an integer. */
function parseLength(buf: Buffer, start: number, end: number): number | undefined {
  const len = end - start;
  if (len === 0 || len > 20) return undefined;
  let i = start;
  const negative = buf[i] === 0x2d;
  if (negative && ++i === end) return undefined;
  if (buf[i] === 0x30) return end - i === 1 && !negative ? 0 : undefined;
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

const HEX = /^[0-9a-fA-F]$/;

/**
 * Splits an inline command into words as Redis's `sdssplitargs` does: spaces separate words;
 * `"…"` allows `\n \r \t \b \a \\ \"` and `\xHH` escapes; `'…'` allows `\'`; a closing quote must
 * be followed by a space or the end. `undefined` for unbalanced quotes.
 */
export function splitInline(buf: Buffer, start: number, end: number): Buffer[] | undefined {
  const words: Buffer[] = [];
  let i = start;
  const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x0b || c === 0x0c;
  for (;;) {
    while (i < end && isSpace(buf[i])) i++;
    if (i >= end) return words;
    const bytes: number[] = [];
    let inDouble = false;
    let inSingle = false;
    let done = false;
    while (!done) {
      const c = i < end ? buf[i] : -1;
      if (inDouble) {
        if (c < 0) return undefined;
        if (c === 0x5c && i + 3 < end && buf[i + 1] === 0x78 && HEX.test(String.fromCharCode(buf[i + 2])) && HEX.test(String.fromCharCode(buf[i + 3]))) {
          bytes.push(parseInt(String.fromCharCode(buf[i + 2], buf[i + 3]), 16));
          i += 3;
        } else if (c === 0x5c && i + 1 < end) {
          i++;
          const e = buf[i];
          bytes.push(e === 0x6e ? 0x0a : e === 0x72 ? 0x0d : e === 0x74 ? 0x09 : e === 0x62 ? 0x08 : e === 0x61 ? 0x07 : e);
        } else if (c === 0x22) {
          // The closing quote must be followed by a space or nothing.
          if (i + 1 < end && !isSpace(buf[i + 1])) return undefined;
          done = true;
        } else {
          bytes.push(c);
        }
      } else if (inSingle) {
        if (c < 0) return undefined;
        if (c === 0x5c && i + 1 < end && buf[i + 1] === 0x27) {
          i++;
          bytes.push(0x27);
        } else if (c === 0x27) {
          if (i + 1 < end && !isSpace(buf[i + 1])) return undefined;
          done = true;
        } else {
          bytes.push(c);
        }
      } else if (c < 0 || isSpace(c)) {
        done = true;
      } else if (c === 0x22) {
        inDouble = true;
      } else if (c === 0x27) {
        inSingle = true;
      } else {
        bytes.push(c);
      }
      if (i < end) i++;
    }
    words.push(Buffer.from(bytes));
  }
}
