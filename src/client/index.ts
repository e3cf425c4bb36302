/**
 * `protokv/client`: the client library alone. Nothing here loads the server's dependencies
 * (the store, logging, configuration), so an application that only talks to a protokv server
 * pulls in the client and the protocol, and nothing else.
 */
export { connect, type ConnectOptions, type TlsClientOptions } from './client.js';
export {
  createClient,
  KvClient,
  type CallOptions,
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type Page,
  type ScanOptions,
  type TableInfo,
} from './core/client.js';
export type { ReconnectOptions } from './core/timing.js';
export { Subscription, type SubscribeOptions } from './core/subscription.js';
export {
  AbortError,
  ConnectionClosedError,
  ProtocolError,
  ProtokvBaseError,
  ProtokvError,
  SlowConsumerError,
  TimeoutError,
} from './core/errors.js';
export type { Compression, StreamEnd, StreamHandler, Transport, TransportStream } from './core/transport.js';
export { webCompression } from './core/web-compression.js';
export { requests } from '../protocol/requests.js';
export { toValue, fromValue, isEmptyValue, EMPTY_VALUE, type KvValue } from '../protocol/values.js';
export type { CommandRequest, CommandResponse, Value, Kvpair } from '../protocol/generated/abi.js';
