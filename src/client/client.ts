/**
 * The Node client: `connect()` opens a `KvClient` over TCP or TLS sockets (optionally yamux),
 * with zlib for compression. Everything else — commands, reconnects, timeouts, subscriptions —
 * is the shared client core (`core/`).
 *
 * ```ts
 * const kv = await connect({ port: 9527 });
 * await kv.hset('users', 'ada', 'Lovelace');
 * console.log(await kv.hget('users', 'ada')); // 'Lovelace'
 * await kv.close();
 * ```
 */
import type tls from 'node:tls';
import { createClient, KvClient, type ClientOptions } from './core/client.js';
import { nodeCompression } from './node/compression.js';
import { SocketTransport } from './node/socket-transport.js';

/** TLS options: any `tls.connect` option (`ca`, `cert`, `key`, `pfx`, `servername`, …). */
export type TlsClientOptions = tls.ConnectionOptions;

/** Options of `connect()`. */
export interface ConnectOptions extends ClientOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 9527. */
  port?: number;
  /** Use TLS: `true` for the system's CAs, or `tls.connect` options, passed through (TLS 1.2 at least). */
  tls?: boolean | TlsClientOptions;
  /**
   * `yamux`: one connection carries every stream — commands on one, each subscription on its
   * own — for servers started with `--mux yamux`. Default: a connection per stream.
   */
  mux?: 'none' | 'yamux';
  /** TCP keep-alive: `true` (default, first probe after 30 s idle), `false`, or the idle time in ms. */
  keepAlive?: boolean | number;
  /** Cancels connecting. */
  signal?: AbortSignal;
}

/**
 * Connects to a protokv server. Rejects when the first connection cannot be made
 * (`ConnectionClosedError` with a hint, `TimeoutError`, `AbortError`); once connected the client
 * reconnects by itself (see `ClientOptions.reconnect`).
 */
export function connect(options: ConnectOptions = {}): Promise<KvClient> {
  const transport = new SocketTransport({
    host: options.host,
    port: options.port,
    tls: options.tls,
    mux: options.mux,
    keepAlive: options.keepAlive,
    // The core applies the time limit (and reports it as a TimeoutError).
    connectTimeoutMs: 0x7fff_ffff,
  });
  return createClient(transport, nodeCompression, options);
}

export { KvClient };
