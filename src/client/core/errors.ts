/**
 * The client's failure kinds, one class each, all under `ProtokvBaseError` (see
 * `protocol/errors.ts` for the whole hierarchy). A client never throws a raw socket error: the
 * system error, when there is one, is the `cause`.
 */
import { ProtokvBaseError } from '../../protocol/errors.js';

export { ProtokvBaseError, ProtokvError } from '../../protocol/errors.js';

/**
 * No connection could carry the request: the server refused or reset the connection, it closed
 * before answering, the TLS handshake failed, reconnecting gave up, or the client was closed.
 * A request that fails this way after it was sent may or may not have been applied.
 */
export class ConnectionClosedError extends ProtokvBaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectionClosedError';
  }
}

/** The server disconnected a subscriber that fell too far behind (its backlog limit). */
export class SlowConsumerError extends ConnectionClosedError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SlowConsumerError';
  }
}

/** No answer within the time limit (a request's `timeoutMs`, or `connectTimeoutMs`). */
export class TimeoutError extends ProtokvBaseError {
  /** The limit that passed, in milliseconds. */
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's `AbortSignal` fired; its `reason` is the `cause`. */
export class AbortError extends ProtokvBaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AbortError';
  }
}

/** The server sent something that is not a protokv frame or response (or speaks another mux). */
export class ProtocolError extends ProtokvBaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtocolError';
  }
}

/** The `AbortError` for `signal`. */
export function abortError(signal: AbortSignal, what: string): AbortError {
  return new AbortError(`${what} was aborted`, { cause: signal.reason });
}

/** Anything thrown, as an `Error`. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
