/**
 * The protokv client: one typed method per command, returning plain JavaScript values (see
 * `protocol/values.ts` for the mapping). Any number of commands may be in flight on one
 * connection; answers are matched in order.
 *
 * ```ts
 * const kv = await connect({ port: 9527 });
 * await kv.hset('users', 'ada', 'Lovelace');
 * console.log(await kv.hget('users', 'ada')); // 'Lovelace'
 * await kv.close();
 * ```
 */
import type { Duplex } from 'node:stream';
import type { CommandRequest, CommandResponse } from '../protocol/generated/abi.js';
import { requests } from '../protocol/requests.js';
import { fromValue, pairsToMap, type KvValue } from '../protocol/values.js';
import { Channel } from './channel.js';
import { ProtokvError, ProtocolError } from './errors.js';
import { Subscription } from './subscription.js';
import { openSocket } from './socket.js';
import { YamuxSession } from '../transport/yamux.js';

export interface TlsClientOptions {
  /** CA certificate(s) to trust (PEM); defaults to the system's. */
  ca?: string | Buffer;
  /** Client certificate (PEM), for mutual TLS. */
  cert?: string | Buffer;
  /** Client private key (PEM), for mutual TLS. */
  key?: string | Buffer;
  /** Name to verify the server certificate against; defaults to `host`. */
  servername?: string;
}

export interface ConnectOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 9527. */
  port?: number;
  /** Use TLS (`true` for system CAs, or options). */
  tls?: boolean | TlsClientOptions;
  /** Largest response frame accepted. Default 64 MiB. */
  maxFrameSize?: number;
  /** Give up connecting after this long (ms). Default 10,000. */
  connectTimeoutMs?: number;
  /**
   * `yamux`: one connection carries every stream — commands on one, each subscription on its
   * own — for servers started with `--mux yamux`. Default: a connection per stream.
   */
  mux?: 'none' | 'yamux';
}

/** Opens a connection to a protokv server. */
export async function connect(options: ConnectOptions = {}): Promise<KvClient> {
  const socket = await openSocket(options);
  if (options.mux === 'yamux') {
    const session = new YamuxSession(socket, 'client');
    session.on('error', () => {});
    return new KvClient(new Channel(session.open(), options.maxFrameSize), () => Promise.resolve(session.open()), options, () =>
      session.close(),
    );
  }
  return new KvClient(new Channel(socket, options.maxFrameSize), () => openSocket(options), options);
}

/** Throws the server's error for a non-2xx response. */
function check(response: CommandResponse): CommandResponse {
  if (response.status < 200 || response.status >= 300) throw new ProtokvError(response.status, response.message);
  return response;
}

const firstValue = (r: CommandResponse): KvValue => fromValue(check(r).values[0]);
const allValues = (r: CommandResponse): KvValue[] => check(r).values.map(fromValue);
const firstBool = (r: CommandResponse): boolean => firstValue(r) === true;
const allBools = (r: CommandResponse): boolean[] => allValues(r).map((v) => v === true);

export class KvClient {
  readonly #channel: Channel;
  readonly #openStream: () => Promise<Duplex>;
  readonly #options: ConnectOptions;
  readonly #subscriptions = new Set<Subscription>();
  readonly #closeTransport: (() => Promise<void>) | undefined;

  /** @internal Use `connect()`. */
  constructor(channel: Channel, openStream: () => Promise<Duplex>, options: ConnectOptions, closeTransport?: () => Promise<void>) {
    this.#channel = channel;
    this.#openStream = openStream;
    this.#options = options;
    this.#closeTransport = closeTransport;
  }

  /** Resolves when the connection has closed. */
  get closed(): Promise<void> {
    return this.#channel.closed;
  }

  /** Sends any request and returns the raw response, whatever its status. */
  send(request: CommandRequest): Promise<CommandResponse> {
    return this.#channel.request(request);
  }

  /** The value of `key`, `null` for the empty value, or `undefined` when the key does not exist. */
  async hget(table: string, key: string): Promise<KvValue | undefined> {
    const r = await this.send(requests.hget(table, key));
    return r.status === 404 ? undefined : firstValue(r);
  }

  /** Every pair of `table`. */
  async hgetall(table: string): Promise<Map<string, KvValue>> {
    return pairsToMap(check(await this.send(requests.hgetall(table))).pairs);
  }

  /** The values of `keys`, in order; `null` for a missing key. */
  async hmget(table: string, keys: string[]): Promise<KvValue[]> {
    return allValues(await this.send(requests.hmget(table, keys)));
  }

  /** Stores `value`; resolves to the previous value, or `null` when the key was new. */
  async hset(table: string, key: string, value: KvValue): Promise<KvValue> {
    return firstValue(await this.send(requests.hset(table, key, value)));
  }

  /** Stores every pair atomically; resolves to each previous value (or `null`), in order. */
  async hmset(table: string, pairs: Iterable<readonly [string, KvValue]> | Record<string, KvValue>): Promise<KvValue[]> {
    return allValues(await this.send(requests.hmset(table, pairs)));
  }

  /** Removes `key`; resolves to the removed value, or `null` when it was absent. */
  async hdel(table: string, key: string): Promise<KvValue> {
    return firstValue(await this.send(requests.hdel(table, key)));
  }

  /** Removes every key atomically; resolves to each removed value (or `null`), in order. */
  async hmdel(table: string, keys: string[]): Promise<KvValue[]> {
    return allValues(await this.send(requests.hmdel(table, keys)));
  }

  /** Whether `key` exists. */
  async hexist(table: string, key: string): Promise<boolean> {
    return firstBool(await this.send(requests.hexist(table, key)));
  }

  /** Whether each key exists, in order. */
  async hmexist(table: string, keys: string[]): Promise<boolean[]> {
    return allBools(await this.send(requests.hmexist(table, keys)));
  }

  /** Sends `values` to every current subscriber of `topic`. */
  async publish(topic: string, ...values: KvValue[]): Promise<void> {
    check(await this.send(requests.publish(topic, ...values)));
  }

  /** Ends subscription `id` on `topic` (from any connection). */
  async unsubscribe(topic: string, id: number): Promise<void> {
    check(await this.send(requests.unsubscribe(topic, id)));
  }

  /**
   * Subscribes to `topic` on a stream of its own. Iterate the result with `for await`; leaving
   * the loop, `unsubscribe()` or `close()` ends it.
   */
  async subscribe(topic: string): Promise<Subscription> {
    const channel = new Channel(await this.#openStream(), this.#options.maxFrameSize);
    let id: number;
    try {
      const first = check(await channel.request(requests.subscribe(topic)));
      const v = first.values[0]?.value;
      if (v?.$case !== 'integer') throw new ProtocolError('SUBSCRIBE did not answer with a subscription id');
      id = Number(v.value);
    } catch (err) {
      channel.destroy();
      throw err;
    }
    const sub = new Subscription(id, topic, channel, (s) => this.unsubscribe(s.topic, s.id));
    this.#subscriptions.add(sub);
    void sub.closed.then(() => this.#subscriptions.delete(sub));
    return sub;
  }

  /** Waits for answers to requests already sent, then closes the connection and its subscriptions. */
  async close(): Promise<void> {
    await Promise.all(Array.from(this.#subscriptions, (s) => s.unsubscribe().catch(() => {})));
    this.#channel.end();
    await this.#channel.closed;
    await this.#closeTransport?.();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
