/**
 * A WebSocket seen as a byte stream of protokv frames, so that the stream server (and the load
 * generator) serve it exactly as they serve a TCP socket.
 *
 * Each binary message carries exactly one frame, header included (SPEC §6). Incoming messages
 * are pushed as they are: one message, one chunk, one whole frame — the frame decoder then hands
 * out the payload as a view of the message, without copying. Outgoing bytes are cut back into
 * frames at their headers, each sent as one message; the frames written together leave in one
 * socket write.
 *
 * Back-pressure both ways: a write completes only once the socket has taken it, so the Duplex's
 * `writableLength` counts every byte not yet handed to the OS and `writableNeedDrain` pauses the
 * stream server as it does on TCP; and when the reader stops reading, the socket is paused.
 */
import { Duplex } from 'node:stream';
import type net from 'node:net';
import type WebSocket from 'ws';

const HEADER_SIZE = 4;
const LENGTH_MASK = 0x7fff_ffff;
const OPEN = 1;
const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/** WebSocket close codes (RFC 6455 §7.4.1) that protokv uses. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN_LATER: 1013,
} as const;

/**
 * Cuts a byte stream of whole frames back into frames. Frames inside one chunk are views of it;
 * a frame split across writes (only possible if a writer ever writes part of one) is joined once,
 * when its last byte arrives.
 */
export class FrameSplitter {
  #pieces: Buffer[] = [];
  #pieceBytes = 0;

  /** Adds `chunk` and appends every frame completed by it to `out`. */
  push(chunk: Buffer, out: Buffer[]): void {
    if (this.#pieceBytes > 0) {
      this.#pieces.push(chunk);
      this.#pieceBytes += chunk.length;
      const length = this.#frameLength();
      if (length === undefined || this.#pieceBytes < length) return;
      chunk = Buffer.concat(this.#pieces, this.#pieceBytes);
      this.#pieces = [];
      this.#pieceBytes = 0;
    }
    let pos = 0;
    while (chunk.length - pos >= HEADER_SIZE) {
      const end = pos + HEADER_SIZE + (chunk.readUInt32BE(pos) & LENGTH_MASK);
      if (end > chunk.length) break;
      out.push(pos === 0 && end === chunk.length ? chunk : chunk.subarray(pos, end));
      pos = end;
    }
    if (pos < chunk.length) {
      const rest = chunk.subarray(pos);
      this.#pieces.push(rest);
      this.#pieceBytes = rest.length;
    }
  }

  /** Bytes held that do not yet form a whole frame. */
  get bufferedBytes(): number {
    return this.#pieceBytes;
  }

  /** The whole length of the frame being assembled, once its header is in. */
  #frameLength(): number | undefined {
    if (this.#pieceBytes < HEADER_SIZE) return undefined;
    const head = this.#pieces[0].length >= HEADER_SIZE ? this.#pieces[0] : Buffer.concat(this.#pieces, this.#pieceBytes);
    return HEADER_SIZE + (head.readUInt32BE(0) & LENGTH_MASK);
  }
}

export interface WebSocketStreamOptions {
  /**
   * The TCP (or TLS) socket under the WebSocket. When given, frames written together are sent
   * under one cork, so they leave in one write instead of one each.
   */
  socket?: net.Socket;
}

/** A Duplex of frame bytes over a connected WebSocket from the `ws` package (server or client side). */
export class WebSocketStream extends Duplex {
  readonly #ws: WebSocket;
  readonly #socket: net.Socket | undefined;
  readonly #splitter = new FrameSplitter();
  /** Messages received in this turn, pushed together (see `#onMessage`). */
  #incoming: Buffer[] = [];
  #incomingBytes = 0;
  #closeCode: number = CloseCode.NORMAL;
  #closeReason = '';
  /** Set once a message broke the rules: the connection is closing, and nothing more is read. */
  #refused = false;

  constructor(ws: WebSocket, options: WebSocketStreamOptions = {}) {
    // Not half-open: a WebSocket close is a close of both directions.
    super({ allowHalfOpen: false });
    this.#ws = ws;
    this.#socket = options.socket;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('close', () => {
      if (this.destroyed) return;
      this.push(null);
      this.destroy();
    });
    // `ws` closes the connection itself after an error (1009 for an oversized message, 1002 for
    // a broken WebSocket frame); the stream just ends with it.
    ws.on('error', () => {});
  }

  /** The close code and reason sent when this stream ends normally (default 1000). */
  setCloseStatus(code: number, reason = ''): void {
    this.#closeCode = code;
    this.#closeReason = reason;
  }

  /** Closes the WebSocket at once with `code` (what is queued is still sent first). */
  closeWith(code: number, reason: string): void {
    if (this.#ws.readyState === OPEN) this.#ws.close(code, reason);
  }

  override _read(): void {
    if (this.#ws.isPaused) this.#ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send([chunk], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#send(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.closeWith(this.#closeCode, this.#closeReason);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const ws = this.#ws;
    // Destroyed from our side (backlog exceeded, shutdown timeout): drop the connection now.
    if (ws.readyState === OPEN || ws.readyState === 0) ws.terminate();
    callback(error);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#refused) return;
    if (!isBinary) {
      this.#refuse(CloseCode.UNSUPPORTED_DATA, 'protokv takes binary messages only');
      return;
    }
    if (data.length < HEADER_SIZE || data.length !== HEADER_SIZE + (data.readUInt32BE(0) & LENGTH_MASK)) {
      // Message boundaries are part of the protocol here; one that disagrees with its header
      // cannot be answered in order, so the connection ends.
      this.#refuse(CloseCode.PROTOCOL_ERROR, 'each message must carry exactly one frame');
      return;
    }
    // The messages of one socket read arrive one after another in the same turn: pushed as one
    // chunk of frames, they are served as one batch and answered in one write, as on TCP.
    if (this.#incoming.length === 0) queueMicrotask(this.#pushIncoming);
    this.#incoming.push(data);
    this.#incomingBytes += data.length;
  }

  #refuse(code: number, reason: string): void {
    this.#refused = true;
    this.closeWith(code, reason);
  }

  readonly #pushIncoming = (): void => {
    const messages = this.#incoming;
    const bytes = this.#incomingBytes;
    this.#incoming = [];
    this.#incomingBytes = 0;
    if (this.destroyed) return;
    if (!this.push(messages.length === 1 ? messages[0] : Buffer.concat(messages, bytes))) this.#ws.pause();
  };

  #send(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState !== OPEN) {
      callback(new Error('the WebSocket is closed'));
      return;
    }
    const frames: Buffer[] = [];
    for (const chunk of chunks) this.#splitter.push(chunk, frames);
    if (frames.length === 0) {
      callback();
      return;
    }
    const socket = this.#socket;
    socket?.cork();
    const last = frames.length - 1;
    for (let i = 0; i < last; i++) ws.send(frames[i], SEND_OPTIONS);
    // Done once the socket has taken the last one: until then the bytes count as unwritten.
    ws.send(frames[last], SEND_OPTIONS, (err) => callback(err));
    socket?.uncork();
  }
}
