/**
 * The one registry of protokv errors. Every error a client can see has a stable code, an
 * HTTP-style status (SPEC 1.4) and a message; `errorResponse` is the single place an error
 * becomes a `CommandResponse`.
 */
import type { CommandResponse } from './protocol/generated/abi.js';
import { ProtokvError } from './protocol/errors.js';

/** Every error code protokv uses, with its status and what it means. */
export const ERROR_CODES = {
  INVALID_COMMAND: { status: 400, description: 'the request is not a valid command' },
  MALFORMED_FRAME: { status: 400, description: 'the payload is not valid protobuf or not valid gzip' },
  SUBSCRIPTION_PROTOCOL: { status: 400, description: 'a request was sent on a subscription stream' },
  TOO_MANY_KEYS: { status: 400, description: 'a multi-key command names more keys than allowed' },
  INVALID_UTF8: { status: 400, description: 'a string field of the request is not valid UTF-8' },
  INVALID_CURSOR: { status: 400, description: 'a paging cursor that the server did not hand out' },
  PAGE_TOO_LARGE: { status: 400, description: 'a paging command asks for more entries per page than allowed' },
  NOT_FOUND: { status: 404, description: 'the key or subscription does not exist' },
  FRAME_TOO_LARGE: { status: 413, description: 'a frame (or its inflated payload) exceeds the maximum size' },
  RESPONSE_TOO_LARGE: { status: 413, description: 'the response would exceed the maximum frame size' },
  STORAGE: { status: 500, description: 'the store failed to read or write' },
  INTERNAL: { status: 500, description: 'an unexpected failure inside the server' },
  SHUTTING_DOWN: { status: 503, description: 'the server is shutting down' },
  LIMIT_REACHED: { status: 503, description: 'a configured server limit was reached' },
  STORE_UNAVAILABLE: { status: 503, description: 'the storage engine (Redis) is unreachable, failing over or refusing work for now' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error raised inside the server, with a stable code and the status a client receives for it
 * (a client sees it as a `ProtokvError` with the same status and message).
 */
export class KvError extends ProtokvError {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(ERROR_CODES[code].status, message, options);
    this.name = 'KvError';
    this.code = code;
  }
}

/** Constructors for each error, so messages have one wording everywhere. */
export const errors = {
  invalidCommand: (detail: string) => new KvError('INVALID_COMMAND', `Invalid command: ${detail}`),
  malformedFrame: (detail: string, cause?: unknown) =>
    new KvError('MALFORMED_FRAME', `Invalid command: ${detail}`, { cause }),
  subscriptionProtocol: () =>
    new KvError('SUBSCRIPTION_PROTOCOL', 'Invalid command: nothing may be sent on a subscription stream; the subscription has ended'),
  tooManyKeys: (count: number, max: number) =>
    new KvError('TOO_MANY_KEYS', `Invalid command: ${count} keys exceed the maximum of ${max} per command`),
  invalidUtf8: (field: string) =>
    new KvError('INVALID_UTF8', `Invalid command: ${field} is not valid UTF-8`),
  invalidCursor: (cursor: string) =>
    new KvError('INVALID_CURSOR', `Invalid command: malformed cursor ${JSON.stringify(cursor.length > 64 ? `${cursor.slice(0, 64)}…` : cursor)}`),
  pageTooLarge: (count: number, max: number) =>
    new KvError('PAGE_TOO_LARGE', `Invalid command: count ${count} exceeds the maximum of ${max} entries per page`),
  notFound: (table: string, key: string) => new KvError('NOT_FOUND', `Not found: table ${table}, key ${key}`),
  subscriptionNotFound: (topic: string, id: number) =>
    new KvError('NOT_FOUND', `Not found: subscription ${id} on topic ${topic}`),
  frameTooLarge: (size: number, max: number) =>
    new KvError('FRAME_TOO_LARGE', `Frame too large: ${size} bytes exceeds the maximum of ${max} bytes`),
  responseTooLarge: (what: string, max: number) =>
    new KvError('RESPONSE_TOO_LARGE', `Response too large: ${what} exceeds the maximum frame size of ${max} bytes (use HSCAN)`),
  storage: (detail: string, cause?: unknown) => new KvError('STORAGE', `Storage error: ${detail}`, { cause }),
  internal: (detail: string, cause?: unknown) => new KvError('INTERNAL', `Internal error: ${detail}`, { cause }),
  shuttingDown: () => new KvError('SHUTTING_DOWN', 'Service unavailable: the server is shutting down'),
  limitReached: (detail: string) => new KvError('LIMIT_REACHED', `Service unavailable: ${detail}`),
  storeUnavailable: (detail: string, cause?: unknown) =>
    new KvError('STORE_UNAVAILABLE', `Service unavailable: store ${detail}`, { cause }),
};

/** Normalizes anything thrown into a `KvError`, never leaking a stack trace to clients. */
export function toKvError(err: unknown): KvError {
  if (err instanceof KvError) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return errors.internal(detail, err);
}

/** The response a client receives for an error: status and message, no values, no pairs. */
export function errorResponse(err: unknown): CommandResponse {
  const e = toKvError(err);
  return { status: e.status, message: e.message, values: [], pairs: [] };
}
