/**
 * `protokv/browser`: the protokv client for web pages, over WebSocket (SPEC §6). The same client
 * as the Node one — same methods, same value mapping (bigint integers, `Uint8Array` binaries,
 * `null` for the empty value), subscriptions as async iterables, reconnect, timeouts, abort
 * signals, the same error classes — built on the same core, with no Node built-ins: frames are
 * gzipped with the browser's `CompressionStream`.
 *
 * ```ts
 * import { connect } from 'protokv/browser';
 * const kv = await connect();                      // /ws on the page's own origin
 * await kv.hset('users', 'born', 1815n);
 * for await (const message of await kv.subscribe('news')) console.log(message);
 * ```
 */
import { createClient, type ClientOptions, type KvClient } from '../client/core/client.js';
import { webCompression } from '../client/core/web-compression.js';
import { WebSocketTransport, type WebSocketConstructor } from './websocket-transport.js';

export interface ConnectOptions extends ClientOptions {
  /**
   * The server's WebSocket endpoint, e.g. `wss://kv.example.com:9528/ws`. Default: `/ws` on the
   * origin of the page (`ws:` for an `http:` page, `wss:` for an `https:` one).
   */
  url?: string;
  /** The WebSocket class to use. Default: `globalThis.WebSocket`; in Node, pass `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Abandons connecting when it fires. */
  signal?: AbortSignal;
}

/** The default endpoint: `/ws` on the page's own origin. */
function pageEndpoint(): string {
  const location = (globalThis as { location?: { protocol: string; host: string } }).location;
  if (location === undefined || !/^https?:$/.test(location.protocol)) {
    throw new TypeError('connect() needs options.url outside a web page served over http(s)');
  }
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

/**
 * Connects to a protokv server's `/ws`. Rejects (`ConnectionClosedError`, `TimeoutError`,
 * `AbortError`) when the first connection fails; afterwards the client reconnects by itself.
 */
export function connect(options: ConnectOptions = {}): Promise<KvClient> {
  const WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (WebSocket === undefined) {
    return Promise.reject(new TypeError('no WebSocket here: pass options.WebSocket (in Node, the class of the ws package)'));
  }
  let url: string;
  try {
    url = options.url ?? pageEndpoint();
    const scheme = new URL(url).protocol;
    if (scheme !== 'ws:' && scheme !== 'wss:') throw new TypeError(`options.url must be a ws: or wss: URL, not ${url}`);
  } catch (err) {
    return Promise.reject(err instanceof TypeError && err.message.includes('options.url') ? err : new TypeError(`options.url is not a URL: ${options.url}`));
  }
  return createClient(new WebSocketTransport(url, WebSocket), webCompression, options);
}

export { KvClient, type CallOptions, type ClientEvents, type ClientOptions, type ClientState } from '../client/core/client.js';
export { Subscription, type SubscribeOptions } from '../client/core/subscription.js';
export type { ReconnectOptions } from '../client/core/timing.js';
export {
  AbortError,
  ConnectionClosedError,
  ProtocolError,
  ProtokvBaseError,
  ProtokvError,
  SlowConsumerError,
  TimeoutError,
} from '../client/core/errors.js';
export { requests } from '../protocol/requests.js';
export { toValue, fromValue, isEmptyValue, EMPTY_VALUE, type KvValue } from '../protocol/values.js';
export type { CommandRequest, CommandResponse, Value, Kvpair } from '../protocol/generated/abi.js';
export type { WebSocketConstructor, WebSocketLike } from './websocket-transport.js';
