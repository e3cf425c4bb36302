/**
 * Yamux multiplexing (SPEC 1.6; HashiCorp yamux spec): one TCP or TLS connection carries many
 * independent streams, each a plain Node `Duplex` that the rest of protokv treats exactly like
 * a socket.
 *
 * Flow control is what bounds memory: a stream's receive window is granted back to the peer
 * only as the local reader consumes data, so a stream nobody reads holds at most one window,
 * and a writer whose peer does not read sees its write callbacks stop and `write()` return
 * false. A peer that sends past the window it was granted is cut off with go-away(protocol
 * error).
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { FrameTimer } from './frame-timer.js';
import {
  DEFAULT_WINDOW,
  encodeHeader,
  Flag,
  FrameParser,
  FrameType,
  GoAwayCode,
  PROTOCOL_VERSION,
  type FrameHeader,
  type FrameSink,
} from './yamux/frame.js';

export { GoAwayCode } from './yamux/frame.js';

export interface YamuxOptions {
  /** Receive window each stream starts with, in bytes; at least 256 KiB (the spec's default). */
  initialWindow?: number;
  /** Most peer-opened streams open at once (default 1024); streams over it are refused with RST. */
  maxStreams?: number;
  /** Largest a stream's receive window may grow to while its reader keeps up (default 16 MiB). */
  maxWindow?: number;
  /** Interval of keep-alive pings (default 30 s); a ping still unanswered at the next one ends the session. */
  keepAliveMs?: number | false;
  /**
   * A yamux frame (header, or data frame payload) begun by the peer must be complete within this
   * many ms, or the session ends with go-away(protocol error): a peer dripping bytes cannot hold
   * a connection forever. Default: no limit.
   */
  frameTimeoutMs?: number | false;
}

export type YamuxErrorCode =
  /** The peer reset the stream, or refused to open it. */
  | 'ERR_YAMUX_STREAM_RESET'
  /** The session ended while the stream was still open. */
  | 'ERR_YAMUX_SESSION_CLOSED'
  /** The peer broke the protocol; the session was ended with go-away(protocol error). */
  | 'ERR_YAMUX_PROTOCOL'
  /** No new stream may be opened: go-away was sent or received. */
  | 'ERR_YAMUX_GO_AWAY'
  /** A keep-alive ping went unanswered. */
  | 'ERR_YAMUX_KEEPALIVE';

export class YamuxError extends Error {
  readonly code: YamuxErrorCode;

  constructor(code: YamuxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'YamuxError';
    this.code = code;
  }
}

const DEFAULTS = {
  initialWindow: DEFAULT_WINDOW,
  maxStreams: 1024,
  maxWindow: 16 * 1024 * 1024,
  keepAliveMs: 30_000,
  frameTimeoutMs: false,
} as const;

const MAX_UINT32 = 0xffff_ffff;
/** Longer timer delays overflow in Node and fire at once. */
const MAX_TIMER_MS = 0x7fff_ffff;
/**
 * Data frames are cut at this size so that, when the connection is congested, streams take
 * turns in slices this big instead of one stream pushing a whole window ahead of the others.
 */
const MAX_DATA_FRAME = 64 * 1024;
/**
 * Replies to the peer's own requests (ping answers, stream refusals) are dropped while this much
 * is waiting to go out: a peer that floods requests but does not read cannot grow our buffers.
 */
const REPLY_BACKLOG_LIMIT = 1024 * 1024;
/** How long an ended connection may stay half-open before it is destroyed. */
const LINGER_MS = 5_000;

/**
 * Destroys `stream`, reporting `err` only if someone listens for it: an 'error' event with no
 * listener would crash the process, and a peer must never be able to do that.
 */
function destroyQuietly(stream: Duplex, err: Error): void {
  if (stream.listenerCount('error') > 0) stream.destroy(err);
  else stream.destroy();
}

/** What a stream needs from its session; kept narrow so neither reaches into the other. */
interface StreamLink {
  sendFrame(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void;
  /** True while the connection's outgoing buffer is full; data must wait for the drain. */
  congested(): boolean;
  waitForDrain(streamId: number): void;
  /** The stream is finished in both directions (or reset): forget it. */
  detach(streamId: number): void;
  /** Smoothed round-trip time in ms, 0 until a ping has been answered. */
  rtt(): number;
}

/** How the session drives a stream; kept off the stream's public surface. */
interface StreamControl {
  readonly stream: YamuxStream;
  /** Sends what the window and the connection allow of the pending write. */
  flush(): void;
  /** The peer announced a data frame of `length` bytes; false if it exceeds the window. */
  reserve(length: number): boolean;
  /** A piece of payload from the peer. */
  receive(piece: Buffer): void;
  windowUpdate(delta: number): void;
  /** The peer half-closed: it will send nothing more. */
  remoteFin(): void;
  /** The peer reset the stream, or refused to open it. */
  remoteReset(): void;
  /** The session is gone: nothing can be sent or received any more. */
  abort(cause?: Error): void;
}

/** Creates a stream and the handle its session drives it through (set by `YamuxStream`). */
let createStream: (link: StreamLink, id: number, initialWindow: number, maxWindow: number) => StreamControl;

/**
 * One multiplexed stream: a byte `Duplex` with socket semantics. `end()` half-closes (FIN),
 * the peer's FIN ends the readable side, `destroy()` resets the stream (RST) unless both sides
 * had already finished, and a reset from the peer destroys it with `ERR_YAMUX_STREAM_RESET`
 * (reported only if an 'error' listener is attached). Obtain streams from
 * `YamuxSession.open()` and the session's 'stream' event.
 */
export class YamuxStream extends Duplex {
  /** The yamux stream id: odd when the client opened it, even when the server did. */
  readonly id: number;
  readonly #link: StreamLink;
  readonly #maxWindow: number;

  /** Bytes the peer still lets us send. */
  #sendWindow = DEFAULT_WINDOW;
  /** The chunk `_write` is working on, and where in it sending stopped. */
  #pending: Buffer | undefined;
  #pendingOffset = 0;
  #pendingCallback: ((err?: Error | null) => void) | undefined;

  /** Current receive window: what the peer may have outstanding once we catch up. */
  #recvWindow: number;
  /** Bytes the peer may still send before it must wait for a window update. */
  #recvCredit: number;
  /** Payload bytes pushed to the readable side so far. */
  #received = 0;
  /** Of those, bytes consumed by the reader whose window has already been granted back. */
  #granted = 0;
  #lastGrantAt = performance.now();

  #localFin = false;
  #remoteFin = false;
  /** Reset (either way) or cut off with its session: no frame may be sent for it any more. */
  #dead = false;

  private constructor(link: StreamLink, id: number, initialWindow: number, maxWindow: number) {
    super({ allowHalfOpen: true });
    this.#link = link;
    this.id = id;
    this.#maxWindow = maxWindow;
    // The window beyond the spec's default is granted with the SYN or ACK, so it is ours at once.
    this.#recvWindow = initialWindow;
    this.#recvCredit = initialWindow;
  }

  static {
    createStream = (link, id, initialWindow, maxWindow) => {
      const stream = new YamuxStream(link, id, initialWindow, maxWindow);
      return {
        stream,
        flush: () => stream.#flush(),
        reserve: (length) => stream.#reserve(length),
        receive: (piece) => stream.#receive(piece),
        windowUpdate: (delta) => stream.#windowUpdate(delta),
        remoteFin: () => stream.#onRemoteFin(),
        remoteReset: () => stream.#onRemoteReset(),
        abort: (cause) => stream.#abort(cause),
      };
    };
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.#dead) {
      callback(new YamuxError('ERR_YAMUX_SESSION_CLOSED', 'the stream can no longer send'));
      return;
    }
    if (chunk.length === 0) {
      callback();
      return;
    }
    this.#pending = chunk;
    this.#pendingOffset = 0;
    this.#pendingCallback = callback;
    this.#flush();
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.#dead) {
      this.#localFin = true;
      this.#link.sendFrame(FrameType.WindowUpdate, Flag.FIN, this.id, 0);
      if (this.#remoteFin) this.#link.detach(this.id);
    }
    callback();
  }

  override _read(): void {
    this.#grantConsumed();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const pending = this.#pendingCallback;
    this.#pending = undefined;
    this.#pendingCallback = undefined;
    if (!this.#dead) {
      this.#dead = true;
      if (!(this.#localFin && this.#remoteFin)) this.#link.sendFrame(FrameType.WindowUpdate, Flag.RST, this.id, 0);
      this.#link.detach(this.id);
    }
    pending?.(err ?? new YamuxError('ERR_YAMUX_SESSION_CLOSED', 'the stream was destroyed before the write was sent'));
    callback(err);
  }

  /**
   * Sends as much of the pending chunk as the window and the connection allow, and completes
   * the write only once all of it is out: that is what propagates back-pressure to the writer.
   */
  #flush(): void {
    while (this.#pending !== undefined) {
      if (this.#sendWindow === 0) return;
      if (this.#link.congested()) {
        this.#link.waitForDrain(this.id);
        return;
      }
      const chunk = this.#pending;
      const start = this.#pendingOffset;
      const n = Math.min(this.#sendWindow, chunk.length - start, MAX_DATA_FRAME);
      this.#link.sendFrame(FrameType.Data, 0, this.id, n, n === chunk.length ? chunk : chunk.subarray(start, start + n));
      this.#sendWindow -= n;
      this.#pendingOffset += n;
      if (this.#pendingOffset === chunk.length) {
        const callback = this.#pendingCallback!;
        this.#pending = undefined;
        this.#pendingCallback = undefined;
        callback();
      }
    }
  }

  #reserve(length: number): boolean {
    if (this.#dead || this.#remoteFin) return true; // dropped on arrival, so nothing to account
    if (length > this.#recvCredit) return false;
    this.#recvCredit -= length;
    return true;
  }

  #receive(piece: Buffer): void {
    if (this.#dead || this.#remoteFin || this.destroyed) return;
    this.#received += piece.length;
    // push()'s return value is ignored on purpose: the window, not the stream buffer, bounds
    // what the peer may send, and it is only granted back as the reader consumes.
    this.push(piece);
  }

  #windowUpdate(delta: number): void {
    if (this.#dead) return;
    this.#sendWindow += delta;
    if (delta > 0) this.#flush();
  }

  #onRemoteFin(): void {
    if (this.#dead || this.#remoteFin) return;
    this.#remoteFin = true;
    this.push(null);
    // Both sides sent FIN: the stream is over for the session even if unread data is still
    // buffered here; the Duplex destroys itself once that data is read.
    if (this.#localFin) this.#link.detach(this.id);
  }

  #onRemoteReset(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#link.detach(this.id);
    destroyQuietly(this, new YamuxError('ERR_YAMUX_STREAM_RESET', `stream ${this.id} was reset by the peer`));
  }

  #abort(cause?: Error): void {
    if (this.#dead) return;
    this.#dead = true;
    destroyQuietly(this, new YamuxError('ERR_YAMUX_SESSION_CLOSED', 'the yamux session closed', { cause }));
  }

  /**
   * Gives the peer back the window for what the reader has consumed, once that is half the
   * window: fewer, larger updates. Called from `_read`, which Node calls only once the reader
   * has drained the buffer below its high-water mark, so a paused reader stops granting.
   */
  #grantConsumed(): void {
    if (this.#dead || this.#remoteFin) return;
    const consumed = this.#received - this.readableLength;
    const released = consumed - this.#granted;
    if (released < this.#recvWindow / 2) return;
    const now = performance.now();
    let growth = 0;
    // Half a window consumed within two round trips: the window, not the reader, limits the
    // transfer, so double it (up to the maximum) to keep more bytes in flight.
    const rtt = this.#link.rtt();
    if (rtt > 0 && now - this.#lastGrantAt < 2 * rtt && this.#recvWindow < this.#maxWindow) {
      growth = Math.min(this.#recvWindow, this.#maxWindow - this.#recvWindow);
      this.#recvWindow += growth;
    }
    this.#granted = consumed;
    this.#lastGrantAt = now;
    this.#recvCredit += released + growth;
    this.#link.sendFrame(FrameType.WindowUpdate, 0, this.id, released + growth);
  }
}

type YamuxSessionEvents = {
  /** The peer opened a stream. With no listener, inbound streams are refused. */
  stream: [stream: YamuxStream];
  /** The peer sent go-away: no new stream may be opened, existing ones carry on. */
  goaway: [code: number];
  /** The session failed (protocol error, keep-alive timeout, socket error); emitted only if listened to. */
  error: [err: Error];
  /** The session is over and every stream it still had is destroyed. */
  close: [];
};

interface PendingPing {
  sentAt: number;
  resolve: (rtt: number) => void;
  reject: (err: Error) => void;
}

/**
 * A yamux session over one connection. The client opens odd stream ids, the server even ones;
 * either side may open streams. Frames written in the same tick go out in one batched write.
 *
 * Events: 'stream' (an inbound `YamuxStream`), 'goaway' (code), 'error' (only if listened to),
 * 'close'.
 */
export class YamuxSession extends EventEmitter<YamuxSessionEvents> {
  readonly role: 'client' | 'server';
  readonly #socket: Duplex;
  readonly #parser: FrameParser;
  readonly #initialWindow: number;
  readonly #maxWindow: number;
  readonly #maxStreams: number;
  readonly #link: StreamLink;

  readonly #streams = new Map<number, StreamControl>();
  #inboundCount = 0;
  #nextStreamId: number;
  /** The highest stream id the peer has opened: ids only go up, so a finished stream's id is never reused. */
  #lastInboundId = 0;

  readonly #frameTimer: FrameTimer | undefined;

  /** Streams with data to send that wait for the connection to drain, in turn order. */
  readonly #blocked = new Set<StreamControl>();
  #congested = false;
  #corked = false;

  /** Where the payload of the data frame being parsed goes; undefined to discard it. */
  #payloadTarget: StreamControl | undefined;
  #payloadFlags = 0;

  readonly #pings = new Map<number, PendingPing>();
  #nextPingId = 0;
  #rtt = 0;
  #keepAlive: NodeJS.Timeout | undefined;
  #keepAliveOutstanding = false;

  #localGoAway = false;
  #remoteGoAway = false;
  #closeRequested = false;
  #closed = false;
  readonly #closeWaiters: (() => void)[] = [];

  constructor(socket: Duplex, role: 'client' | 'server', options: YamuxOptions = {}) {
    super();
    const initialWindow = options.initialWindow ?? DEFAULTS.initialWindow;
    const maxWindow = options.maxWindow ?? Math.max(DEFAULTS.maxWindow, initialWindow);
    const maxStreams = options.maxStreams ?? DEFAULTS.maxStreams;
    const keepAliveMs = options.keepAliveMs ?? DEFAULTS.keepAliveMs;
    const frameTimeoutMs = options.frameTimeoutMs ?? DEFAULTS.frameTimeoutMs;
    if (!Number.isInteger(initialWindow) || initialWindow < DEFAULT_WINDOW || initialWindow > MAX_UINT32) {
      throw new RangeError(`initialWindow must be an integer from ${DEFAULT_WINDOW} to ${MAX_UINT32}`);
    }
    if (!Number.isInteger(maxWindow) || maxWindow < initialWindow || maxWindow > MAX_UINT32) {
      throw new RangeError(`maxWindow must be an integer from initialWindow to ${MAX_UINT32}`);
    }
    if (!Number.isInteger(maxStreams) || maxStreams < 1) throw new RangeError('maxStreams must be a positive integer');
    if (keepAliveMs !== false && (!Number.isInteger(keepAliveMs) || keepAliveMs < 1 || keepAliveMs > MAX_TIMER_MS)) {
      throw new RangeError(`keepAliveMs must be false or an integer from 1 to ${MAX_TIMER_MS} (milliseconds)`);
    }
    if (frameTimeoutMs !== false && (!Number.isInteger(frameTimeoutMs) || frameTimeoutMs < 0 || frameTimeoutMs > MAX_TIMER_MS)) {
      throw new RangeError(`frameTimeoutMs must be false or an integer from 0 to ${MAX_TIMER_MS} (milliseconds)`);
    }
    if (frameTimeoutMs !== false && frameTimeoutMs > 0) {
      this.#frameTimer = new FrameTimer(frameTimeoutMs, () => this.#protocolError(`a frame was not completed within ${frameTimeoutMs} ms`));
    }

    this.role = role;
    this.#socket = socket;
    this.#initialWindow = initialWindow;
    this.#maxWindow = maxWindow;
    this.#maxStreams = maxStreams;
    this.#nextStreamId = role === 'client' ? 1 : 2;

    this.#link = {
      sendFrame: (type, flags, id, length, payload) => this.#sendFrame(type, flags, id, length, payload),
      congested: () => this.#congested,
      waitForDrain: (id) => {
        const control = this.#streams.get(id);
        if (control) this.#blocked.add(control);
      },
      detach: (id) => this.#detach(id),
      rtt: () => this.#rtt,
    };
    this.#parser = new FrameParser(this.#sink());

    socket.on('data', (chunk: Buffer) => {
      this.#parser.push(chunk);
      this.#timeFrame();
    });
    socket.on('drain', () => this.#onDrain());
    socket.on('end', () => {
      this.#teardown();
      this.#endSocket();
    });
    socket.on('error', (err: Error) => {
      this.#teardown(err);
      socket.destroy();
    });
    socket.on('close', () => this.#teardown());
    if (socket.destroyed) {
      process.nextTick(() => this.#teardown());
      return;
    }

    if (keepAliveMs !== false) {
      this.#keepAlive = setInterval(() => this.#keepAliveTick(), keepAliveMs);
      this.#keepAlive.unref();
      // Measure the round trip at once: receive windows only grow once it is known.
      this.#keepAliveTick();
    }
  }

  /** True once the session is over: no stream can be opened and every stream is gone. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Opens an outbound stream. Its SYN goes out at once (batched with whatever follows in the
   * same tick), so the peer sees the stream even before any data. Throws `ERR_YAMUX_GO_AWAY` after
   * go-away was sent or received, and `ERR_YAMUX_SESSION_CLOSED` once the session is closed.
   */
  open(): YamuxStream {
    if (this.#closed) throw new YamuxError('ERR_YAMUX_SESSION_CLOSED', 'the yamux session is closed');
    if (this.#localGoAway || this.#remoteGoAway) {
      throw new YamuxError('ERR_YAMUX_GO_AWAY', `no new streams: go-away was ${this.#localGoAway ? 'sent' : 'received'}`);
    }
    const id = this.#nextStreamId;
    if (id > MAX_UINT32) throw new YamuxError('ERR_YAMUX_GO_AWAY', 'stream ids are exhausted on this session');
    this.#nextStreamId += 2;
    const control = createStream(this.#link, id, this.#initialWindow, this.#maxWindow);
    this.#streams.set(id, control);
    this.#sendFrame(FrameType.WindowUpdate, Flag.SYN, id, this.#initialWindow - DEFAULT_WINDOW);
    return control.stream;
  }

  /**
   * Tells the peer to open no more streams and stops accepting (and opening) new ones; streams
   * already open carry on until they finish.
   */
  goAway(code: number = GoAwayCode.Normal): void {
    if (this.#localGoAway || this.#closed) return;
    this.#localGoAway = true;
    this.#sendFrame(FrameType.GoAway, 0, 0, code);
  }

  /** Sends a ping and resolves with the round-trip time in milliseconds. */
  ping(): Promise<number> {
    if (this.#closed) return Promise.reject(new YamuxError('ERR_YAMUX_SESSION_CLOSED', 'the yamux session is closed'));
    const id = this.#nextPingId;
    this.#nextPingId = (id + 1) >>> 0;
    return new Promise((resolve, reject) => {
      this.#pings.set(id, { sentAt: performance.now(), resolve, reject });
      this.#sendFrame(FrameType.Ping, Flag.SYN, 0, id);
    });
  }

  /**
   * Graceful close: sends go-away, waits until every open stream has finished (both sides
   * ended, or reset), then ends the connection. Resolves once the session is closed. It waits
   * as long as streams stay open: race it with a timer and call `destroy()` to bound it.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    this.goAway(GoAwayCode.Normal);
    this.#closeRequested = true;
    this.#maybeFinishClose();
    return closed;
  }

  /**
   * Ends the session at once: go-away (internal error if `err` is given), every stream
   * destroyed, the connection destroyed. `err` is emitted as 'error' only if listened to.
   */
  destroy(err?: Error): void {
    if (this.#closed) return;
    this.goAway(err ? GoAwayCode.InternalError : GoAwayCode.Normal);
    this.#uncork();
    this.#teardown(err);
    this.#socket.destroy();
  }

  #sink(): FrameSink {
    return {
      onHeader: (header) => this.#onHeader(header),
      onPayload: (piece) => this.#payloadTarget?.receive(piece),
      onFrameEnd: () => {
        const stream = this.#payloadTarget;
        this.#payloadTarget = undefined;
        if (stream) this.#applyFlags(stream, this.#payloadFlags);
      },
    };
  }

  #onHeader(header: FrameHeader): void {
    if (this.#closed) return;
    if (header.version !== PROTOCOL_VERSION) {
      this.#protocolError(`unsupported yamux version ${header.version}`);
      return;
    }
    switch (header.type) {
      case FrameType.Data:
      case FrameType.WindowUpdate:
        this.#onStreamFrame(header);
        return;
      case FrameType.Ping:
        this.#onPing(header);
        return;
      case FrameType.GoAway:
        if (!this.#remoteGoAway) {
          this.#remoteGoAway = true;
          this.emit('goaway', header.length);
        }
        return;
      default:
        this.#protocolError(`unknown frame type ${header.type}`);
    }
  }

  #onStreamFrame(header: FrameHeader): void {
    const { type, flags, streamId, length } = header;
    const isData = type === FrameType.Data;
    this.#payloadTarget = undefined;
    if (streamId === 0) {
      this.#protocolError('a stream frame used stream id 0');
      return;
    }
    let stream = this.#streams.get(streamId);
    if (flags & Flag.SYN) {
      if (stream) {
        this.#protocolError(`stream ${streamId} was opened twice`);
        return;
      }
      if ((streamId % 2 === 1) !== (this.role === 'server')) {
        this.#protocolError(`the peer opened stream ${streamId}, an id of our own parity`);
        return;
      }
      if (streamId <= this.#lastInboundId) {
        this.#protocolError(`the peer opened stream ${streamId} after stream ${this.#lastInboundId}: stream ids must increase`);
        return;
      }
      this.#lastInboundId = streamId;
      stream = this.#accept(streamId);
    }
    // Frames for streams that are gone (reset, refused, finished) may still be in flight: drop them.
    if (!stream) return;
    if (flags & Flag.RST) {
      stream.remoteReset();
      return;
    }
    if (!isData) {
      stream.windowUpdate(length);
      this.#applyFlags(stream, flags);
      return;
    }
    if (!stream.reserve(length)) {
      this.#protocolError(`the peer sent ${length} bytes on stream ${streamId}, more than its window allows`);
      return;
    }
    // Flags of a data frame take effect after its payload: a FIN ends the stream after the data.
    this.#payloadTarget = stream;
    this.#payloadFlags = flags;
  }

  #applyFlags(stream: StreamControl, flags: number): void {
    if (flags & Flag.RST) stream.remoteReset();
    else if (flags & Flag.FIN) stream.remoteFin();
  }

  /**
   * A SYN from the peer: accept the stream (ACK) or refuse it (RST) — after go-away either way
   * (a peer that sent go-away promised to open no more), over the stream limit, or with no listener.
   */
  #accept(id: number): StreamControl | undefined {
    if (this.#localGoAway || this.#remoteGoAway || this.#inboundCount >= this.#maxStreams || this.listenerCount('stream') === 0) {
      this.#reply(FrameType.WindowUpdate, Flag.RST, id, 0);
      return undefined;
    }
    const control = createStream(this.#link, id, this.#initialWindow, this.#maxWindow);
    this.#streams.set(id, control);
    this.#inboundCount++;
    this.#sendFrame(FrameType.WindowUpdate, Flag.ACK, id, this.#initialWindow - DEFAULT_WINDOW);
    this.emit('stream', control.stream);
    return control;
  }

  #onPing(header: FrameHeader): void {
    if (header.flags & Flag.SYN) {
      this.#reply(FrameType.Ping, Flag.ACK, 0, header.length);
      return;
    }
    if (!(header.flags & Flag.ACK)) return;
    const ping = this.#pings.get(header.length);
    if (!ping) return;
    this.#pings.delete(header.length);
    const rtt = performance.now() - ping.sentAt;
    this.#rtt = this.#rtt === 0 ? rtt : (this.#rtt * 7 + rtt) / 8;
    ping.resolve(rtt);
  }

  /** Runs the frame timer while the peer is in the middle of a frame. */
  #timeFrame(): void {
    const timer = this.#frameTimer;
    if (timer === undefined) return;
    if (this.#parser.midFrame && !this.#closed) timer.await(this.#parser.headersParsed, this.#parser.payloadLeft);
    else timer.stop();
  }

  #keepAliveTick(): void {
    if (this.#keepAliveOutstanding) {
      this.destroy(new YamuxError('ERR_YAMUX_KEEPALIVE', 'the peer did not answer a keep-alive ping'));
      return;
    }
    this.#keepAliveOutstanding = true;
    this.ping().then(
      () => (this.#keepAliveOutstanding = false),
      () => undefined,
    );
  }

  /** Sends an answer the peer asked for, unless the peer is not reading what we already sent. */
  #reply(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.#socket.writableLength > REPLY_BACKLOG_LIMIT) return;
    this.#sendFrame(type, flags, streamId, length);
  }

  #sendFrame(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void {
    const socket = this.#socket;
    if (!socket.writable) return;
    if (!this.#corked) {
      // Everything sent in this tick leaves in one batched write when the tick ends.
      this.#corked = true;
      socket.cork();
      process.nextTick(() => this.#uncork());
    }
    let ok = socket.write(encodeHeader(type, flags, streamId, length));
    if (payload) ok = socket.write(payload);
    if (!ok) this.#congested = true;
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#socket.uncork();
  }

  #onDrain(): void {
    this.#congested = false;
    // Round-robin: each waiting stream sends until the connection fills up again, then goes to
    // the back of the line.
    for (const stream of this.#blocked) {
      if (this.#congested) break;
      this.#blocked.delete(stream);
      stream.flush();
    }
  }

  #detach(id: number): void {
    const control = this.#streams.get(id);
    if (!control) return;
    this.#streams.delete(id);
    this.#blocked.delete(control);
    if ((id % 2 === 1) === (this.role === 'server')) this.#inboundCount--;
    this.#maybeFinishClose();
  }

  #maybeFinishClose(): void {
    if (!this.#closeRequested || this.#closed || this.#streams.size > 0) return;
    this.#teardown();
    this.#endSocket();
  }

  #protocolError(message: string): void {
    const err = new YamuxError('ERR_YAMUX_PROTOCOL', message);
    // Sent even after an earlier go-away: the peer should learn why the connection ends.
    this.#localGoAway = true;
    this.#sendFrame(FrameType.GoAway, 0, 0, GoAwayCode.ProtocolError);
    this.#teardown(err);
    this.#endSocket();
  }

  /** Ends the connection after what is queued has been sent; destroys it if the peer lingers. */
  #endSocket(): void {
    const socket = this.#socket;
    this.#uncork();
    if (socket.destroyed || socket.writableEnded) return;
    socket.end();
    const linger = setTimeout(() => socket.destroy(), LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  }

  #emitError(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** The session is over: stop parsing, fail what waits, destroy every stream still open. */
  #teardown(err?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#parser.stop();
    this.#payloadTarget = undefined;
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    this.#frameTimer?.dispose();
    const closedError = new YamuxError('ERR_YAMUX_SESSION_CLOSED', 'the yamux session closed', { cause: err });
    for (const ping of this.#pings.values()) ping.reject(closedError);
    this.#pings.clear();
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#blocked.clear();
    this.#inboundCount = 0;
    for (const stream of streams) stream.abort(err);
    if (err) this.#emitError(err);
    this.emit('close');
    for (const resolve of this.#closeWaiters.splice(0)) resolve();
  }
}
