/**
 * protokv: the public API.
 *
 * - `connect` and `KvClient`: the client library.
 * - `Service`, the stores and `ProtokvServer`: to embed a server in-process.
 * - the protocol: generated messages, request builders and value conversions.
 */
export { connect, KvClient, type ConnectOptions, type TlsClientOptions } from './client/client.js';
export { Subscription } from './client/subscription.js';
export { ProtokvError, ConnectionClosedError, ProtocolError } from './client/errors.js';

export { Service, type ServiceOptions } from './service/service.js';
export { HOOK_NAMES, type HookName, type HookSignatures } from './service/hooks.js';
export { ProtokvServer, type ServerOptions, type TlsMaterial } from './transport/server.js';
export { serveStream, type StreamLimits, type ServedStream } from './transport/stream-server.js';

export type { Store, Entry, MaybePromise } from './storage/store.js';
export { MemoryStore } from './storage/memory.js';

export * as abi from './protocol/generated/abi.js';
export { requests, command, type CommandName } from './protocol/requests.js';
export { toValue, fromValue, toPair, pairsToMap, isEmptyValue, EMPTY_VALUE, type KvValue } from './protocol/values.js';
export { encodeFrame, FrameDecoder, COMPRESSION_THRESHOLD, DEFAULT_MAX_FRAME_SIZE } from './codec/frame.js';
export { KvError, ERROR_CODES, errors, type ErrorCode } from './errors.js';
