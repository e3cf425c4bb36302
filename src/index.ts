/**
 * protokv: the public API.
 *
 * - The client library (also alone, without the server's dependencies, as `protokv/client`):
 *   `connect`, `KvClient`, `Subscription`, the errors.
 * - The server, to embed in-process: `Service`, the stores (`MemoryStore`, `LmdbStore`) and
 *   `ProtokvServer`.
 * - The protocol: generated messages, request builders, value conversions, the frame codec.
 */
export * from './client/index.js';

export { Service, type ServiceOptions } from './service/service.js';
export { HOOK_NAMES, type HookName, type HookSignatures } from './service/hooks.js';
export { ProtokvServer, type ServerOptions, type TlsMaterial } from './transport/server.js';
export { serveStream, type StreamLimits, type ServedStream } from './transport/stream-server.js';
export { YamuxError, type YamuxErrorCode } from './transport/yamux.js';

export type { Store, Entry, MaybePromise } from './storage/store.js';
export { MemoryStore } from './storage/memory.js';
export { LmdbStore } from './storage/lmdb.js';

export * as abi from './protocol/generated/abi.js';
export { command, type CommandName } from './protocol/requests.js';
export { toPair, pairsToMap } from './protocol/values.js';
export { encodeFrame, FrameDecoder, COMPRESSION_THRESHOLD, DEFAULT_MAX_FRAME_SIZE } from './codec/frame.js';
export { KvError, ERROR_CODES, errors, type ErrorCode } from './errors.js';
