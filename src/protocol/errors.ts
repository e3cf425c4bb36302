/**
 * The root of every error protokv throws, on the server and in every client, and the error for
 * a server's answer with a non-2xx status. They live here, below everything else, so that the
 * server's error registry (`src/errors.ts`) and the clients share one hierarchy:
 *
 * ```text
 * ProtokvBaseError                anything protokv throws
 * ├── ProtokvError                a protokv status (SPEC 1.4): `status`, `message`
 * │   └── KvError                 …raised inside the server, with a stable `code` (src/errors.ts)
 * ├── ConnectionClosedError       client: no connection could carry the request
 * │   └── SlowConsumerError       client: the server dropped a subscriber that fell behind
 * ├── TimeoutError                client: no answer in time
 * ├── AbortError                  client: the caller's AbortSignal fired
 * └── ProtocolError               client: the server sent something that is not protokv
 * ```
 *
 * A client sees a server's `KvError` as a `ProtokvError` with the same status and message;
 * an application embedding the server sees the `KvError` itself. `catch (e) { if (e instanceof
 * ProtokvError && e.status === 404) … }` works in both.
 */

/** The base class of every protokv error. */
export class ProtokvBaseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtokvBaseError';
  }
}

/** A protokv status other than 2xx: the server answered with `status` and `message`. */
export class ProtokvError extends ProtokvBaseError {
  /** HTTP-style status (400, 404, 413, 500, 503). */
  readonly status: number;

  constructor(status: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtokvError';
    this.status = status;
  }
}
