/**
 * What the client core needs from a network: the seam between the protocol logic every client
 * shares (`client.ts`: framing, value mapping, reconnect, offline queue, timeouts,
 * subscriptions) and the way bytes travel. The Node client implements it over `net`/`tls`
 * sockets, optionally multiplexed with yamux (`../node/socket-transport.ts`); a browser client
 * implements it over WebSocket, one WebSocket per stream. Nothing in this folder may import a
 * Node built-in.
 *
 * ## The contract
 *
 * - A **stream** is one ordered, reliable, bidirectional stream of frames (SPEC 1.6): a TCP or
 *   TLS connection, a yamux stream, a WebSocket. `openStream` opens a fresh one each call; the
 *   core uses one for commands and one per subscription.
 * - The core writes whole frames, one per `write` call (header included), so a message-based
 *   transport sends each `write` as one message. A byte-stream transport may batch writes.
 * - The transport hands received bytes to `handler.onData` in order, in chunks of any size:
 *   the core reassembles frames. A message-based transport passes each message as one chunk.
 * - `handler.onClose` is called exactly once, after the last `onData`, with how the stream
 *   ended (`StreamEnd`); after it, the transport never calls the handler again.
 * - `openStream` honours `signal`: when it fires before the stream is usable, the transport
 *   releases whatever it started and rejects (the core turns that into a `TimeoutError` or an
 *   `AbortError`). It rejects with an `Error` whose message says what failed and, where it can,
 *   what to do about it (wrong TLS settings, wrong mux).
 * - `pause`/`resume` stop and restart delivery to `onData` (back-pressure for a subscriber that
 *   reads slowly); a transport that cannot pause may ignore them.
 * - Compression is the transport side's too (`Compression`): Node has zlib, browsers have
 *   `CompressionStream` (`web-compression.ts`).
 */

/** How a stream ended. */
export type StreamEnd =
  /** The server ended the stream in an orderly way (end of stream, no error). */
  | { readonly kind: 'end' }
  /**
   * The server aborted this one stream while the connection carrying it is known to be healthy
   * (a yamux reset). Only multiplexed transports report it.
   */
  | { readonly kind: 'reset'; readonly error: Error }
  /** The connection failed or was cut (reset, network error, TLS alert, session lost). */
  | { readonly kind: 'lost'; readonly error: Error };

/** Receives what arrives on one stream. */
export interface StreamHandler {
  /** Bytes from the server, in order: any slice of the frame stream. */
  onData(chunk: Uint8Array): void;
  /** The stream is over; called once, last. */
  onClose(end: StreamEnd): void;
}

/** One open stream of frames. */
export interface TransportStream {
  /** Sends one whole frame (header included). */
  write(frame: Uint8Array): void;
  /** Ends our side once queued frames are sent; the server then finishes and closes. */
  end(): void;
  /** Closes the stream at once; `onClose` follows. */
  destroy(): void;
  /** Stops calling `onData` until `resume()`. */
  pause(): void;
  resume(): void;
}

/** Opens streams to one server. */
export interface Transport {
  /** The server's address, for messages (`host:port`, a URL). */
  readonly address: string;
  /**
   * True when every stream rides one connection whose health the transport watches (yamux):
   * an orderly `end` of a stream then means the server chose to end it. False when each stream
   * is a connection of its own, whose orderly end may also be a server that died.
   */
  readonly multiplexed: boolean;
  /** Opens a new stream; resolves once it can carry frames (connected, TLS handshake done). */
  openStream(handler: StreamHandler, signal: AbortSignal): Promise<TransportStream>;
  /** Releases what streams share (a multiplexed connection); called once every stream is closed. */
  close(): void;
}

/**
 * gzip for frames larger than the compression threshold (SPEC 1.2). Either method may answer
 * synchronously or with a promise; the core keeps frames in order either way.
 */
export interface Compression {
  gzip(data: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Inflates `data`; throws (or rejects) when it is not gzip or inflates past `maxLength` bytes. */
  gunzip(data: Uint8Array, maxLength: number): Uint8Array | Promise<Uint8Array>;
}
