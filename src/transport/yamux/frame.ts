/**
 * The yamux frame layer (HashiCorp yamux spec): a 12-byte big-endian header — version,
 * type, flags, stream id, length — followed, for data frames only, by `length` payload bytes.
 * No I/O here, so the session and the tests share one encoder and one parser.
 */

export const HEADER_SIZE = 12;
export const PROTOCOL_VERSION = 0;

/** Every stream starts with this window in both directions; only window updates change it. */
export const DEFAULT_WINDOW = 256 * 1024;

export const FrameType = {
  Data: 0,
  WindowUpdate: 1,
  Ping: 2,
  GoAway: 3,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const Flag = {
  SYN: 1,
  ACK: 2,
  FIN: 4,
  RST: 8,
} as const;

/** The length field of a go-away frame. */
export const GoAwayCode = {
  Normal: 0,
  ProtocolError: 1,
  InternalError: 2,
} as const;
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

export interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  streamId: number;
  /** Payload size for data, window delta for window update, opaque value for ping, code for go-away. */
  length: number;
}

export function encodeHeader(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  // Small allocUnsafe buffers come from Node's shared pool, so a header costs no allocation of its own.
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  header[0] = PROTOCOL_VERSION;
  header[1] = type;
  header.writeUInt16BE(flags, 2);
  header.writeUInt32BE(streamId, 4);
  header.writeUInt32BE(length, 8);
  return header;
}

/** What the parser reports; payload bytes arrive separately so they are never buffered here. */
export interface FrameSink {
  /** A whole header. For a data frame, `length` payload bytes follow through `onPayload`. */
  onHeader(header: FrameHeader): void;
  /** A piece of the current data frame's payload: a view of the received chunk, never a copy. */
  onPayload(piece: Buffer): void;
  /** The current data frame's payload is complete (also called for an empty data frame). */
  onFrameEnd(): void;
}

/**
 * Incremental frame parser. Headers split across chunks are reassembled in a 12-byte scratch
 * buffer; payloads are handed on piece by piece as views of the input, however the byte stream
 * was cut, so a large data frame is never held whole in memory.
 */
export class FrameParser {
  readonly #sink: FrameSink;
  readonly #scratch = Buffer.allocUnsafe(HEADER_SIZE);
  #scratchFill = 0;
  /** Payload bytes still expected for the current data frame; -1 between frames. */
  #payloadLeft = -1;
  #stopped = false;
  /** Frames whose header has been parsed so far. */
  #headers = 0;

  constructor(sink: FrameSink) {
    this.#sink = sink;
  }

  /** Whether a frame has begun but not ended: part of a header, or of a data frame's payload. */
  get midFrame(): boolean {
    return this.#scratchFill > 0 || this.#payloadLeft > 0;
  }

  /** Payload bytes still expected for the data frame under way (0 between frames or in a header). */
  get payloadLeft(): number {
    return Math.max(0, this.#payloadLeft);
  }

  /** Headers parsed so far: tells one partial frame from the next. */
  get headersParsed(): number {
    return this.#headers;
  }

  /** Stops parsing at once, even in the middle of a chunk: used when the session fails. */
  stop(): void {
    this.#stopped = true;
  }

  push(chunk: Buffer): void {
    const end = chunk.length;
    let offset = 0;
    while (offset < end && !this.#stopped) {
      if (this.#payloadLeft > 0) {
        const n = Math.min(this.#payloadLeft, end - offset);
        this.#payloadLeft -= n;
        this.#sink.onPayload(n === end ? chunk : chunk.subarray(offset, offset + n));
        offset += n;
        if (this.#payloadLeft === 0) this.#endFrame();
        continue;
      }
      let source: Buffer;
      let at: number;
      if (this.#scratchFill === 0 && end - offset >= HEADER_SIZE) {
        source = chunk;
        at = offset;
        offset += HEADER_SIZE;
      } else {
        const n = Math.min(HEADER_SIZE - this.#scratchFill, end - offset);
        chunk.copy(this.#scratch, this.#scratchFill, offset, offset + n);
        this.#scratchFill += n;
        offset += n;
        if (this.#scratchFill < HEADER_SIZE) return;
        this.#scratchFill = 0;
        source = this.#scratch;
        at = 0;
      }
      const header: FrameHeader = {
        version: source[at],
        type: source[at + 1],
        flags: source.readUInt16BE(at + 2),
        streamId: source.readUInt32BE(at + 4),
        length: source.readUInt32BE(at + 8),
      };
      const isData = header.type === FrameType.Data && header.version === PROTOCOL_VERSION;
      this.#payloadLeft = isData ? header.length : -1;
      this.#headers++;
      this.#sink.onHeader(header);
      if (this.#stopped) return;
      if (isData && header.length === 0) this.#endFrame();
    }
  }

  #endFrame(): void {
    this.#payloadLeft = -1;
    this.#sink.onFrameEnd();
  }
}
