/**
 * The protokv client core: one typed method per command, pipelining, automatic reconnect with
 * an offline queue, per-request timeouts and abort signals, subscriptions that survive
 * reconnects. It talks to the network only through a `Transport` (see `transport.ts`), so the
 * Node client and a browser client share every line of it.
 *
 * ## Values: missing versus empty
 *
 * Values map one-to-one onto the protocol's `Value` (see `protocol/values.ts`): `null` is the
 * empty value. `undefined` means "no such key":
 *
 * | method | a missing key | a key holding the empty value |
 * |---|---|---|
 * | `hget`, `hmget` | `undefined` | `null` |
 * | `hgetall` (and scans) | absent from the result | `null` |
 * | `hset`, `hmset` (previous value), `hdel`, `hmdel` (removed value) | `undefined` | `undefined` |
 *
 * The protocol answers a write with the empty value both for a key that did not exist and for
 * one that held the empty value, so write results cannot tell them apart and say `undefined`
 * ("no previous value"). `HMGET` has the same ambiguity; `hmget` resolves it by asking again
 * with `HGET` for just the keys that came back empty (pipelined, one more round trip only when
 * there are such keys), so each key's answer is exact — those keys are read a moment after
 * the others.
 */
import { CommandRequest, type CommandResponse, type Value } from '../../protocol/generated/abi.js';
import { requests, type CommandName } from '../../protocol/requests.js';
import { fromValue, isEmptyValue, pairsToMap, type KvValue } from '../../protocol/values.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../../codec/frame-format.js';
import { FrameChannel, type ChannelEvents, type ResponseSlot } from './channel.js';
import { Emitter } from './events.js';
import {
  abortError,
  ConnectionClosedError,
  ProtocolError,
  ProtokvBaseError,
  ProtokvError,
  TimeoutError,
} from './errors.js';
import { FAIL, START, Subscription, type SubscribeOptions, type SubscriptionHost } from './subscription.js';
import { deadline, retryPolicy, sleep, within, type ReconnectOptions, type RetryPolicy } from './timing.js';
import type { Compression, StreamEnd, StreamHandler, Transport, TransportStream } from './transport.js';

/** Per-call options, accepted by every command method as its last argument. */
export interface CallOptions {
  /** Fail with `TimeoutError` when no answer arrives within this many ms (0: wait forever). Default: `requestTimeoutMs`. */
  timeoutMs?: number;
  /** Fail with `AbortError` when this signal fires. */
  signal?: AbortSignal;
}

/** One page of a listing, and the cursor of the next one (`""` when the listing is complete). */
export interface Page<T> {
  readonly items: T[];
  readonly cursor: string;
}

/** A table's name and its number of keys. */
export interface TableInfo {
  readonly name: string;
  readonly keys: number;
}

/** Options of the paged listings: page size (1–10,000; default: the server's, 100) and call options for each page. */
export interface ScanOptions extends CallOptions {
  count?: number;
}

/** Options of every client, whatever its transport. */
export interface ClientOptions {
  /** Time limit of each request, in ms, unless a call says otherwise (0: none). Default 10,000. */
  requestTimeoutMs?: number;
  /** Time limit to open a connection (TCP, TLS, mux handshake), in ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** How long `close()` waits for answers to requests in flight before closing hard, in ms. Default 5,000. */
  closeTimeoutMs?: number;
  /** Reconnect when the connection is lost (default `true`: 100 ms doubling to 5 s, with jitter, forever). */
  reconnect?: boolean | ReconnectOptions;
  /** Commands held while (re)connecting; past it they fail at once (0: never hold). Default 1,000. */
  offlineQueueLimit?: number;
  /** Largest response frame accepted, in bytes. Default 64 MiB. */
  maxFrameSize?: number;
  /** Messages a subscription holds for a slow reader before it stops reading from the server. Default 1,024. */
  subscriptionBufferSize?: number;
}

/** The client's connection state. */
export type ClientState = 'connecting' | 'connected' | 'reconnecting' | 'closing' | 'closed';

/** Status events (listen with `on`); an `error` event with no listener is dropped, never thrown. */
export interface ClientEvents {
  /** A connection is up (the first one, and after each reconnect). */
  connect: [];
  /** The connection was lost; `error` says how. Requests in flight on it have failed. */
  disconnect: [error: Error];
  /** Attempt `attempt` to reconnect starts in `delayMs`. */
  reconnecting: [info: { attempt: number; delayMs: number; error: Error }];
  /** Reconnected after `attempts` attempts; queued commands are being sent. */
  reconnect: [info: { attempts: number }];
  /** A reconnect attempt failed (the client keeps trying unless the policy gives up). */
  error: [error: Error];
  /** The client is closed for good: by `close()` (no argument), or because reconnecting gave up. */
  close: [error?: Error];
}

/** A command waiting for its answer, in the offline queue or on the connection. */
interface Call extends ResponseSlot {
  readonly payload: Uint8Array;
  readonly name: string;
  channel: FrameChannel | undefined;
  sentAt: number;
  receivedAtSend: number;
}

const RESOLVED_OPTIONS = {
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 5_000,
  offlineQueueLimit: 1_000,
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  subscriptionBufferSize: 1_024,
};
type ResolvedOptions = typeof RESOLVED_OPTIONS;

/** Opens the first connection; rejects when it cannot be made (no retry for the first one). */
const OPEN = Symbol('open');

/** Throws the server's error for a non-2xx response. */
function check(response: CommandResponse): CommandResponse {
  if (response.status < 200 || response.status >= 300) throw new ProtokvError(response.status, response.message);
  return response;
}

/** A value the server returned where the empty value means "none": `undefined` then. */
const present = (v: Value | undefined): KvValue | undefined => (isEmptyValue(v) ? undefined : fromValue(v));
const firstBool = (r: CommandResponse): boolean => fromValue(check(r).values[0]) === true;

/** The next-page cursor of an `HSCAN` or `TABLES` answer. */
function nextCursor(r: CommandResponse): string {
  const v = fromValue(r.values[0]);
  if (typeof v !== 'string') throw new ProtocolError('a page came without its next cursor');
  return v;
}

function commandName(request: CommandRequest): string {
  return (request.requestData?.$case ?? 'request').toUpperCase();
}

function resolveOptions(options: ClientOptions): ResolvedOptions {
  const out = { ...RESOLVED_OPTIONS };
  for (const key of Object.keys(RESOLVED_OPTIONS) as (keyof ResolvedOptions)[]) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`${key} must be a number >= 0, got ${String(v)}`);
    out[key] = v;
  }
  if (!Number.isInteger(out.maxFrameSize) || out.maxFrameSize < 1) throw new RangeError('maxFrameSize must be a positive integer');
  if (out.subscriptionBufferSize < 1) throw new RangeError('subscriptionBufferSize must be at least 1');
  return out;
}

/**
 * Opens a client over `transport`. Rejects (with `ConnectionClosedError`, `TimeoutError` or
 * `AbortError`) when the first connection cannot be made; after that the client reconnects by
 * itself.
 */
export async function createClient(
  transport: Transport,
  compression: Compression,
  options: ClientOptions & { signal?: AbortSignal } = {},
): Promise<KvClient> {
  const client = new KvClient(transport, compression, options);
  await client[OPEN](options.signal);
  return client;
}

/**
 * A connection to a protokv server. Create one with `connect()` (Node) or `createClient()`
 * (any transport); every method may be called at once, requests are pipelined and answered in
 * order. See the module documentation for how missing keys and empty values come back.
 */
export class KvClient extends Emitter<ClientEvents> implements AsyncDisposable {
  /** The server's address. */
  readonly address: string;
  readonly #transport: Transport;
  readonly #compression: Compression;
  readonly #options: ResolvedOptions;
  readonly #retry: RetryPolicy | undefined;
  readonly #lifetime = new AbortController();
  readonly #offline: Call[] = [];
  readonly #subscriptions = new Set<Subscription>();
  #waiters: { resolve(): void; reject(err: Error): void }[] = [];
  #state: ClientState = 'connecting';
  #channel: FrameChannel | undefined;
  #generation = 0;
  #closeReason: Error | undefined;
  #closing: Promise<void> | undefined;
  readonly #host: SubscriptionHost;

  /** @internal Use `connect()` or `createClient()`. */
  constructor(transport: Transport, compression: Compression, options: ClientOptions = {}) {
    super();
    this.address = transport.address;
    this.#transport = transport;
    this.#compression = compression;
    this.#options = resolveOptions(options);
    this.#retry = retryPolicy(options.reconnect);
    const o = this.#options;
    this.#host = {
      address: this.address,
      multiplexed: transport.multiplexed,
      bufferSize: o.subscriptionBufferSize,
      closeTimeoutMs: o.closeTimeoutMs,
      requestTimeoutMs: o.requestTimeoutMs,
      whenConnected: () => this.#whenConnected(),
      retryDelay: (attempt, err) => (this.#retry === undefined ? null : this.#retry(attempt, err)),
      open: (topic, events, limits) => this.#openSubscription(topic, events, limits),
      stillServing: (topic, id, generation) => this.#stillServing(topic, id, generation),
    };
  }

  /** Where the connection stands. */
  get state(): ClientState {
    return this.#state;
  }

  /** Commands waiting in the offline queue. */
  get queued(): number {
    return this.#offline.length;
  }

  /** @internal */
  async [OPEN](signal?: AbortSignal): Promise<void> {
    try {
      await this.#openCommandChannel(signal);
    } catch (err) {
      this.#state = 'closed';
      this.#closeReason = err as Error;
      this.#lifetime.abort();
      this.#transport.close();
      throw err;
    }
    this.#state = 'connected';
    this.emit('connect');
  }

  // --- commands ---

  /** Sends any request and resolves with the raw response, whatever its status. */
  send(request: CommandRequest, options?: CallOptions): Promise<CommandResponse> {
    return this.#call(request, options);
  }

  /** The value of `key`: `null` when it holds the empty value, `undefined` when it does not exist. */
  async hget(table: string, key: string, options?: CallOptions): Promise<KvValue | undefined> {
    const r = await this.#call(requests.hget(table, key), options);
    return r.status === 404 ? undefined : fromValue(check(r).values[0]);
  }

  /** Every pair of `table` (empty for a missing table); `null` for keys holding the empty value. */
  async hgetall(table: string, options?: CallOptions): Promise<Map<string, KvValue>> {
    return pairsToMap(check(await this.#call(requests.hgetall(table), options)).pairs);
  }

  /**
   * The values of `keys`, in order: `undefined` for a missing key, `null` for the empty value.
   * Keys the server answers with the empty value are asked again with `HGET` to tell which.
   */
  async hmget(table: string, keys: string[], options?: CallOptions): Promise<(KvValue | undefined)[]> {
    const values = check(await this.#call(requests.hmget(table, keys), options)).values;
    const out: (KvValue | undefined)[] = keys.map((_, i) => fromValue(values[i]));
    const recheck: Promise<void>[] = [];
    for (let i = 0; i < keys.length; i++) {
      if (isEmptyValue(values[i])) recheck.push(this.hget(table, keys[i], options).then((v) => void (out[i] = v)));
    }
    if (recheck.length > 0) await Promise.all(recheck);
    return out;
  }

  /** Stores `value`; resolves to the previous value, `undefined` when there was none (or it was empty). */
  async hset(table: string, key: string, value: KvValue, options?: CallOptions): Promise<KvValue | undefined> {
    return present(check(await this.#call(requests.hset(table, key, value), options)).values[0]);
  }

  /** Stores every pair atomically; resolves to each previous value (or `undefined`), in order. */
  async hmset(
    table: string,
    pairs: Iterable<readonly [string, KvValue]> | Record<string, KvValue>,
    options?: CallOptions,
  ): Promise<(KvValue | undefined)[]> {
    return check(await this.#call(requests.hmset(table, pairs), options)).values.map(present);
  }

  /** Removes `key`; resolves to the removed value, `undefined` when it was absent (or empty). */
  async hdel(table: string, key: string, options?: CallOptions): Promise<KvValue | undefined> {
    return present(check(await this.#call(requests.hdel(table, key), options)).values[0]);
  }

  /** Removes every key atomically; resolves to each removed value (or `undefined`), in order. */
  async hmdel(table: string, keys: string[], options?: CallOptions): Promise<(KvValue | undefined)[]> {
    return check(await this.#call(requests.hmdel(table, keys), options)).values.map(present);
  }

  /** Whether `key` exists. */
  async hexist(table: string, key: string, options?: CallOptions): Promise<boolean> {
    return firstBool(await this.#call(requests.hexist(table, key), options));
  }

  /** Whether each key exists, in order. */
  async hmexist(table: string, keys: string[], options?: CallOptions): Promise<boolean[]> {
    return check(await this.#call(requests.hmexist(table, keys), options)).values.map((v) => fromValue(v) === true);
  }

  /**
   * Sends the values to every current subscriber of `topic`. Call options may follow the
   * values: `publish('news', 'a', 'b', { timeoutMs: 500 })`.
   */
  async publish(topic: string, ...args: KvValue[] | [...KvValue[], CallOptions]): Promise<void> {
    const last = args[args.length - 1];
    const isOptions = typeof last === 'object' && last !== null && !(last instanceof Uint8Array);
    const values = (isOptions ? args.slice(0, -1) : args) as KvValue[];
    check(await this.#call(requests.publish(topic, ...values), isOptions ? (last) : undefined));
  }

  /** Ends subscription `id` on `topic` (any client's). */
  async unsubscribe(topic: string, id: number, options?: CallOptions): Promise<void> {
    check(await this.#call(requests.unsubscribe(topic, id), options));
  }

  /** Number of keys in `table` (0 when it does not exist). */
  async hlen(table: string, options?: CallOptions): Promise<number> {
    return Number(fromValue(check(await this.#call(requests.hlen(table), options)).values[0]));
  }

  /**
   * One page of `table`: up to `count` `[key, value]` entries from `cursor` (`""` to start), and
   * the cursor of the next page (`""` when done). A key present for the whole scan is returned
   * at least once. `scan()` walks every page for you.
   */
  async hscan(table: string, cursor = '', count = 0, options?: CallOptions): Promise<Page<[string, KvValue]>> {
    const r = check(await this.#call(requests.hscan(table, cursor, count), options));
    return { items: r.pairs.map((p) => [p.key, fromValue(p.value)]), cursor: nextCursor(r) };
  }

  /** Every `[key, value]` of `table`, fetched a page at a time with `HSCAN` (never the whole table at once). */
  async *scan(table: string, options: ScanOptions = {}): AsyncGenerator<[string, KvValue], void, undefined> {
    let cursor = '';
    do {
      const page = await this.hscan(table, cursor, options.count ?? 0, options);
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== '');
  }

  /**
   * `tables()`: every non-empty table with its key count, as an async iterable fetching a page
   * at a time. `tables(cursor, count)`: one page of them (`""` starts), like `hscan`.
   */
  tables(options?: ScanOptions): AsyncGenerator<TableInfo, void, undefined>;
  tables(cursor: string, count?: number, options?: CallOptions): Promise<Page<TableInfo>>;
  tables(
    first?: string | ScanOptions,
    count = 0,
    options?: CallOptions,
  ): AsyncGenerator<TableInfo, void, undefined> | Promise<Page<TableInfo>> {
    if (typeof first === 'string') return this.#tablesPage(first, count, options);
    return this.#allTables(first ?? {});
  }

  /** Removes the whole table atomically; resolves to the number of keys removed. */
  async hdrop(table: string, options?: CallOptions): Promise<number> {
    return Number(fromValue(check(await this.#call(requests.hdrop(table), options)).values[0]));
  }

  async #tablesPage(cursor: string, count: number, options?: CallOptions): Promise<Page<TableInfo>> {
    const r = check(await this.#call(requests.tables(cursor, count), options));
    return { items: r.pairs.map((p) => ({ name: p.key, keys: Number(fromValue(p.value)) })), cursor: nextCursor(r) };
  }

  async *#allTables(options: ScanOptions): AsyncGenerator<TableInfo, void, undefined> {
    let cursor = '';
    do {
      const page = await this.#tablesPage(cursor, options.count ?? 0, options);
      yield* page.items;
      cursor = page.cursor;
    } while (cursor !== '');
  }

  /**
   * Subscribes to `topic` on a stream of its own and resolves once the server has confirmed.
   * Iterate the result with `for await`; see `Subscription` for how it ends.
   */
  async subscribe(topic: string, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.#state === 'closing' || this.#state === 'closed') throw this.#closedError();
    const sub = new Subscription(topic, this.#host, options);
    await sub[START]();
    const state = this.#state as ClientState;
    if (state === 'closing' || state === 'closed') {
      await sub.unsubscribe();
      throw this.#closedError();
    }
    this.#subscriptions.add(sub);
    void sub.closed.then(() => this.#subscriptions.delete(sub));
    return sub;
  }

  /**
   * Closes the client: queued commands fail, requests in flight get their answers, then the
   * connection and every subscription close. After `timeoutMs` (default `closeTimeoutMs`) what
   * is still open is closed hard and its requests fail. Never rejects; calling it again returns
   * the same promise.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.timeoutMs ?? this.#options.closeTimeoutMs);
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // --- requests ---

  #call(request: CommandRequest, options?: CallOptions): Promise<CommandResponse> {
    const name = commandName(request);
    if (this.#state === 'closing' || this.#state === 'closed') return Promise.reject(this.#closedError());
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal, name));
    const payload = CommandRequest.encode(request).finish();
    const timeoutMs = options?.timeoutMs ?? this.#options.requestTimeoutMs;
    return new Promise<CommandResponse>((resolve, reject) => {
      const finish = (): void => {
        call.done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const call: Call = {
        done: false,
        payload,
        name,
        channel: undefined,
        sentAt: 0,
        receivedAtSend: 0,
        resolve: (r) => {
          if (call.done) return;
          finish();
          resolve(r);
        },
        reject: (e) => {
          if (call.done) return;
          finish();
          reject(e);
        },
      };
      const onAbort = (): void => this.#expire(call, abortError(signal!, name));
      const timer = timeoutMs > 0 ? setTimeout(() => this.#expire(call, this.#timeoutError(call, timeoutMs)), timeoutMs) : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#dispatch(call);
    });
  }

  #dispatch(call: Call): void {
    if (this.#state === 'connected' && this.#channel !== undefined) {
      this.#sendOn(this.#channel, call);
    } else if (this.#state === 'connecting' || this.#state === 'reconnecting') {
      if (this.#offline.length >= this.#options.offlineQueueLimit) {
        call.reject(
          new ConnectionClosedError(`not connected to ${this.address} and the offline queue is full (${this.#options.offlineQueueLimit} commands)`),
        );
      } else {
        this.#offline.push(call);
      }
    } else {
      call.reject(this.#closedError());
    }
  }

  #sendOn(channel: FrameChannel, call: Call): void {
    call.channel = channel;
    call.sentAt = Date.now();
    call.receivedAtSend = channel.received;
    channel.request(call.payload, call);
  }

  /** A call's time ran out or its signal fired. */
  #expire(call: Call, err: Error): void {
    if (call.done) return;
    call.reject(err);
    const i = this.#offline.indexOf(call);
    if (i >= 0) {
      this.#offline.splice(i, 1);
      return;
    }
    // A connection that has answered nothing for a whole request timeout since this request went
    // out is presumed dead (a hung or black-holed server): replace it rather than let every later
    // request wait behind the one the server will never answer. (With reconnect off, keep it.)
    const channel = call.channel;
    const limit = this.#options.requestTimeoutMs;
    if (
      this.#retry !== undefined &&
      err instanceof TimeoutError &&
      channel !== undefined &&
      channel === this.#channel &&
      channel.received === call.receivedAtSend &&
      limit > 0 &&
      Date.now() - call.sentAt >= limit
    ) {
      channel.destroy(new TimeoutError(`${this.address} answered nothing for ${Date.now() - call.sentAt} ms`, limit));
    }
  }

  #timeoutError(call: Call, timeoutMs: number): TimeoutError {
    // A connection that never answered anything may be talking to a server that expects yamux.
    const silent = call.channel !== undefined && call.channel.received === 0;
    const hint = silent ? ` (${this.address} has not answered anything on this connection; if it was started with --mux yamux, connect with mux: 'yamux')` : '';
    return new TimeoutError(`${call.name} got no answer within ${timeoutMs} ms${hint}`, timeoutMs);
  }

  #closedError(): ConnectionClosedError {
    const reason = this.#closeReason;
    if (reason === undefined) return new ConnectionClosedError('the client is closed (close() was called)');
    return new ConnectionClosedError(`the client is closed: ${reason.message}`, { cause: reason });
  }

  // --- connection ---

  /**
   * Opens one stream within the connect time limit, the client's lifetime and `signal`. When the
   * time runs out the transport is told to stop, and its answer (which says what it was still
   * waiting for) goes into the `TimeoutError`.
   */
  async #openStream(handler: StreamHandler, signal?: AbortSignal): Promise<TransportStream> {
    const ms = this.#options.connectTimeoutMs;
    const lifetime = this.#lifetime.signal;
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    let timedOut = false;
    const timer =
      ms > 0
        ? setTimeout(() => {
            timedOut = true;
            stop();
          }, ms)
        : undefined;
    for (const s of [lifetime, signal]) {
      if (s?.aborted) stop();
      else s?.addEventListener('abort', stop, { once: true });
    }
    try {
      return await this.#transport.openStream(handler, controller.signal);
    } catch (err) {
      if (lifetime.aborted) throw this.#closedError();
      if (timedOut) throw new TimeoutError(`connecting to ${this.address} timed out after ${ms} ms (${(err as Error).message})`, ms, { cause: err });
      if (signal?.aborted) throw abortError(signal, `connecting to ${this.address}`);
      if (err instanceof ProtokvBaseError) throw err;
      throw new ConnectionClosedError(`cannot connect to ${this.address}: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
      lifetime.removeEventListener('abort', stop);
      signal?.removeEventListener('abort', stop);
    }
  }

  async #openCommandChannel(signal?: AbortSignal): Promise<void> {
    let early: Error | undefined;
    const channel: FrameChannel = new FrameChannel(this.address, this.#options.maxFrameSize, this.#compression, {
      onMessage: (response) => {
        // The command stream carries answers only. An unasked-for error is the server refusing
        // the connection (503 over its connection limit, shutting down).
        channel.destroy(
          response.status === 200
            ? new ProtocolError(`${this.address} sent a response to no request`)
            : new ProtokvError(response.status, response.message),
        );
      },
      onEnd: (end, info) => {
        if (channel === this.#channel) this.#onCommandEnd(channel, end, info);
        else early ??= describeEnd(this.address, end, info);
      },
    });
    const stream = await this.#openStream(channel, signal);
    channel.attach(stream);
    if (channel.ended) throw early ?? new ConnectionClosedError(`${this.address} closed the connection at once`);
    this.#channel = channel;
    this.#generation++;
  }

  #onCommandEnd(channel: FrameChannel, end: StreamEnd, info: { partialFrame: boolean; firstBytes: Uint8Array | undefined }): void {
    this.#channel = undefined;
    if (this.#state !== 'connected') return;
    const error = describeEnd(this.address, end, info);
    this.emit('disconnect', error);
    if (this.#retry === undefined) {
      this.#shutdown(new ConnectionClosedError(`lost the connection to ${this.address} (reconnect is off): ${error.message}`, { cause: error }));
      return;
    }
    void this.#reconnect(error);
  }

  async #reconnect(cause: Error): Promise<void> {
    this.#state = 'reconnecting';
    let lastError = cause;
    for (let attempt = 1; ; attempt++) {
      const delay = this.#retry!(attempt, lastError);
      if (delay === null) {
        this.#shutdown(
          new ConnectionClosedError(`gave up reconnecting to ${this.address} after ${attempt - 1} attempts: ${lastError.message}`, { cause: lastError }),
        );
        return;
      }
      this.emit('reconnecting', { attempt, delayMs: Math.round(delay), error: lastError });
      await sleep(delay, this.#lifetime.signal);
      if (this.#state !== 'reconnecting') return;
      try {
        await this.#openCommandChannel();
      } catch (err) {
        if (this.#state !== 'reconnecting') return;
        lastError = err as Error;
        this.emit('error', lastError);
        continue;
      }
      if (this.#state !== 'reconnecting') return;
      this.#state = 'connected';
      this.emit('connect');
      this.emit('reconnect', { attempts: attempt });
      const queued = this.#offline.splice(0);
      for (const call of queued) if (!call.done) this.#sendOn(this.#channel!, call);
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w.resolve();
      return;
    }
  }

  /** Resolves once connected; rejects when the client closes first. */
  #whenConnected(): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    if (this.#state === 'closing' || this.#state === 'closed') return Promise.reject(this.#closedError());
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** The client is done for good because of `reason` (reconnect off or given up). */
  #shutdown(reason: Error): void {
    this.#state = 'closed';
    this.#closeReason = reason;
    this.#lifetime.abort();
    this.#channel?.destroy(reason);
    this.#channel = undefined;
    this.#failWaiting(this.#closedError());
    for (const sub of this.#subscriptions) sub[FAIL](reason);
    this.#transport.close();
    this.emit('close', reason);
  }

  #failWaiting(err: Error): void {
    for (const call of this.#offline.splice(0)) call.reject(err);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(err);
  }

  async #close(timeoutMs: number): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    this.#lifetime.abort();
    this.#failWaiting(new ConnectionClosedError('the client was closed before the command could be sent'));
    const channel = this.#channel;
    channel?.end();
    const subscriptions = Array.from(this.#subscriptions, (s) => s.unsubscribe());
    const finished = await within(Promise.all([channel?.closed, ...subscriptions]), timeoutMs);
    if (!finished) {
      channel?.destroy(new ConnectionClosedError(`close() stopped waiting after ${timeoutMs} ms; the request may or may not have been applied`));
      for (const sub of this.#subscriptions) sub[FAIL](undefined);
    }
    this.#channel = undefined;
    this.#transport.close();
    this.#state = 'closed';
    this.emit('close');
  }

  // --- subscriptions ---

  async #openSubscription(
    topic: string,
    events: ChannelEvents,
    limits: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<{ channel: FrameChannel; id: number; generation: number }> {
    const timeoutMs = limits.timeoutMs ?? this.#options.requestTimeoutMs;
    return deadline(`SUBSCRIBE ${JSON.stringify(topic)}`, { timeoutMs, signal: limits.signal }, async (signal) => {
      await this.#whenConnected();
      const generation = this.#generation;
      const channel = new FrameChannel(this.address, this.#options.maxFrameSize, this.#compression, events);
      // Whatever happens after the deadline passed, nothing may be left subscribed.
      const release = (): void => channel.destroy();
      signal.addEventListener('abort', release, { once: true });
      try {
        channel.attach(await this.#openStream(channel, signal));
        const response = await new Promise<CommandResponse>((resolve, reject) =>
          channel.request(CommandRequest.encode(requests.subscribe(topic)).finish(), { done: false, resolve, reject }),
        );
        check(response);
        const v = response.values[0]?.value;
        if (v?.$case !== 'integer') throw new ProtocolError(`SUBSCRIBE was not answered with a subscription id`);
        if (signal.aborted) throw new ConnectionClosedError('subscribing was cancelled');
        return { channel, id: Number(v.value), generation };
      } catch (err) {
        channel.destroy();
        throw err;
      } finally {
        signal.removeEventListener('abort', release);
      }
    });
  }

  /**
   * After a subscription's own connection ended in an orderly way, tells a server that chose to
   * end it (UNSUBSCRIBE, a limit) from one that went away: true when the command connection
   * that was up when it subscribed still answers. The UNSUBSCRIBE it sends is harmless either
   * way — the subscription is already gone, or should be — and it never goes out on a newer
   * connection, where the same id could name someone else's subscription on a restarted server.
   */
  async #stillServing(topic: string, id: number, generation: number): Promise<boolean> {
    const channel = this.#channel;
    if (this.#state !== 'connected' || channel === undefined || this.#generation !== generation) return false;
    const payload = CommandRequest.encode(requests.unsubscribe(topic, id)).finish();
    try {
      await deadline('checking the server', { timeoutMs: this.#options.requestTimeoutMs || 10_000 }, () => {
        return new Promise<CommandResponse>((resolve, reject) => channel.request(payload, { done: false, resolve, reject }));
      });
      return true;
    } catch {
      return false;
    }
  }
}

/** A `ConnectionClosedError` (or the error itself, when it is one of ours) for how a stream ended. */
function describeEnd(address: string, end: StreamEnd, info: { partialFrame: boolean; firstBytes: Uint8Array | undefined }): Error {
  if (end.kind !== 'end' && end.error instanceof ProtokvBaseError && !(end.error instanceof TimeoutError)) return end.error;
  const yamux = looksLikeYamux(info.firstBytes);
  if (yamux) return new ProtocolError(`${address} speaks yamux: connect with mux: 'yamux' (--mux yamux)`);
  if (end.kind === 'end') {
    return new ConnectionClosedError(`${address} closed the connection${info.partialFrame ? ' in the middle of a frame' : ''}`);
  }
  return new ConnectionClosedError(`lost the connection to ${address}: ${end.error.message}`, { cause: end.error });
}

/** A yamux go-away frame (version 0, type 3) where a protokv frame header was expected. */
function looksLikeYamux(first: Uint8Array | undefined): boolean {
  return first !== undefined && first.length >= 12 && first[0] === 0 && first[1] === 3;
}

export type { CommandName };
