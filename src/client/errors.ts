/** The errors the client library throws (defined in the client core; see `protocol/errors.ts` for the hierarchy). */
export {
  AbortError,
  ConnectionClosedError,
  ProtocolError,
  ProtokvBaseError,
  ProtokvError,
  SlowConsumerError,
  TimeoutError,
} from './core/errors.js';
