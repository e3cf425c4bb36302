/**
 * The command table: one handler per command of SPEC 1.5, each turning a sub-message into a
 * response through the store. Handlers answer synchronously when the store does, and return a
 * promise only when the store does.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { CommandRequest, CommandResponse, Kvpair, Value } from '../protocol/generated/abi.js';
import { ok, okPage, okPairs, okValues, type CommandArgs, type CommandName } from '../protocol/requests.js';
import { EMPTY_VALUE } from '../protocol/values.js';
import { errors } from '../errors.js';
import { isPromise, type Entry, type MaybePromise, type Page, type Store, type TableInfo } from '../storage/store.js';
import type { PubSub, SubscriberContext } from './pubsub.js';
import type { StreamInstrumentation } from '../observability/instrumentation.js';
import { ResponseBudget } from './response-budget.js';

/** The stream a request arrived on, as handlers see it. */
export interface RequestStream extends SubscriberContext {
  /**
   * Runs nothing more from this stream until `settled` settles. A request answered over several
   * turns of the event loop holds its stream, so that the stream's later requests (pipelined
   * behind it) cannot change what it reads. Streams that run one request at a time need not
   * implement it.
   */
  hold?(settled: Promise<unknown>): void;
}

/** What a handler can reach: the store, pub/sub, the requesting stream and the limits. */
export interface CommandContext {
  readonly store: Store;
  readonly pubsub: PubSub;
  readonly maxKeysPerCommand: number;
  /** Largest response payload (the maximum frame size); larger ones are refused with 413. */
  readonly maxResponseBytes: number;
  /** The stream the request arrived on; SUBSCRIBE and requests answered in slices use it. */
  readonly stream: RequestStream | undefined;
  /** Which protocol the request came in on (`resp` for the RESP listener), for metrics and tracing. */
  readonly transport?: string;
  /**
   * Told how many subscriptions a PUBLISH reached (the protobuf response carries no count; a RESP
   * PUBLISH replies with it).
   */
  readonly onPublished?: (receivers: number) => void;
  /** The stream's metrics and tracing; `null` when both are off or the caller is in-process. */
  readonly instrumentation: StreamInstrumentation | null;
}

type Handler<C extends CommandName> = (args: CommandArgs<C>, ctx: CommandContext) => MaybePromise<CommandResponse>;

/** Applies `fn` now if `v` is a value, or when it resolves if it is a promise. */
function map<T, R>(v: MaybePromise<T>, fn: (t: T) => R): MaybePromise<R> {
  return isPromise(v) ? v.then(fn) : fn(v);
}

const orEmpty = (v: Value | undefined): Value => v ?? EMPTY_VALUE;
const valuesOrEmpty = (vs: (Value | undefined)[]): CommandResponse => okValues(vs.map(orEmpty));
const one = (v: Value | undefined): CommandResponse => okValues([orEmpty(v)]);
const bool = (b: boolean): Value => ({ value: { $case: 'bool', value: b } });
const integer = (n: number): Value => ({ value: { $case: 'integer', value: BigInt(n) } });
const string = (s: string): Value => ({ value: { $case: 'string', value: s } });

/** Entries per HSCAN or TABLES page when the request says 0. */
export const DEFAULT_PAGE_SIZE = 100;
/** Most entries one HSCAN or TABLES page may ask for. */
export const MAX_PAGE_SIZE = 10_000;

/** The page size a paging request asks for: 0 means the default; more than the maximum is a 400. */
function pageSize(count: number): number {
  if (count === 0) return DEFAULT_PAGE_SIZE;
  if (count > MAX_PAGE_SIZE) throw errors.pageTooLarge(count, MAX_PAGE_SIZE);
  return count;
}

/** A page as a response: the next cursor in `values`, the page in `pairs`. */
function scanPage(page: Page<Entry>): CommandResponse {
  return okPage(string(page.cursor), page.items.map(toKvpair));
}

function tablesPage(page: Page<TableInfo>): CommandResponse {
  return okPage(
    string(page.cursor),
    page.items.map((t) => ({ key: t.name, value: integer(t.keys) })),
  );
}

function checkKeyCount(count: number, ctx: CommandContext): void {
  if (count > ctx.maxKeysPerCommand) throw errors.tooManyKeys(count, ctx.maxKeysPerCommand);
}

/** Runs `read` for every key, staying synchronous unless the store is not. */
function eachKey<T>(keys: readonly string[], read: (key: string) => MaybePromise<T>): MaybePromise<T[]> {
  const out = new Array<T>(keys.length);
  let pending: Promise<unknown>[] | undefined;
  for (let i = 0; i < keys.length; i++) {
    const r = read(keys[i]);
    if (isPromise(r)) (pending ??= []).push(r.then((v) => (out[i] = v)));
    else out[i] = r;
  }
  return pending ? Promise.all(pending).then(() => out) : out;
}

function toEntry(pair: Kvpair): Entry {
  return { key: pair.key, value: pair.value ?? EMPTY_VALUE };
}

function toKvpair(entry: Entry): Kvpair {
  return { key: entry.key, value: entry.value };
}

/** Table entries gathered in one turn of the event loop; a larger table is gathered over several. */
const GATHER_SLICE = 4096;

/**
 * Collects the entries of a table into pairs, counting each against `budget` so an oversize
 * answer stops at the limit. Up to `GATHER_SLICE` entries are gathered at once, synchronously; a
 * larger table over several turns of the event loop (other clients are served in between), with
 * the requesting stream held meanwhile. An iteration that ends early is closed, releasing the
 * store's snapshot.
 */
function gatherPairs(entries: Iterable<Entry> | AsyncIterable<Entry>, budget: ResponseBudget, ctx: CommandContext): MaybePromise<CommandResponse> {
  if (!(Symbol.iterator in entries)) return gatherAsync(entries, budget);
  const iterator = entries[Symbol.iterator]();
  const pairs: Kvpair[] = [];
  if (gatherSlice(iterator, pairs, budget)) return okPairs(pairs);
  const rest = (async () => {
    do await nextTurn();
    while (!gatherSlice(iterator, pairs, budget));
    return okPairs(pairs);
  })();
  ctx.stream?.hold?.(rest);
  return rest;
}

/** Gathers up to one slice; true once the iteration is complete. */
function gatherSlice(iterator: Iterator<Entry>, pairs: Kvpair[], budget: ResponseBudget): boolean {
  try {
    for (let n = 0; n < GATHER_SLICE; n++) {
      const next = iterator.next();
      if (next.done === true) return true;
      budget.addPair(next.value);
      pairs.push(next.value);
    }
    return false;
  } catch (err) {
    iterator.return?.();
    throw err;
  }
}

async function gatherAsync(entries: AsyncIterable<Entry>, budget: ResponseBudget): Promise<CommandResponse> {
  const pairs: Kvpair[] = [];
  for await (const entry of entries) {
    budget.addPair(entry);
    pairs.push(entry);
  }
  return okPairs(pairs);
}

const handlers: { [C in CommandName]: Handler<C> } = {
  // A single value is checked against the maximum where every response is, as it is encoded.
  hget: ({ table, key }, { store }) =>
    map(store.get(table, key), (v) => {
      if (v === undefined) throw errors.notFound(table, key);
      return okValues([v]);
    }),
  hgetall: ({ table }, ctx) =>
    gatherPairs(ctx.store.iterate(table), new ResponseBudget(ctx.maxResponseBytes, () => `HGETALL of table ${table}`), ctx),
  hmget: ({ table, keys }, ctx) => {
    checkKeyCount(keys.length, ctx);
    const budget = new ResponseBudget(ctx.maxResponseBytes, () => `HMGET of ${keys.length} keys of table ${table}`);
    const counted = (v: Value | undefined): Value | undefined => {
      budget.addValue(v ?? EMPTY_VALUE);
      return v;
    };
    return map(
      eachKey(keys, (k) => map(ctx.store.get(table, k), counted)),
      valuesOrEmpty,
    );
  },
  hset: ({ table, pair }, { store }) => {
    if (pair === undefined) throw errors.invalidCommand('HSET needs a pair');
    return map(store.set(table, pair.key, pair.value ?? EMPTY_VALUE), one);
  },
  hmset: ({ table, pairs }, ctx) => {
    checkKeyCount(pairs.length, ctx);
    return map(ctx.store.setMany(table, pairs.map(toEntry)), valuesOrEmpty);
  },
  hdel: ({ table, key }, { store }) => map(store.del(table, key), one),
  hmdel: ({ table, keys }, ctx) => {
    checkKeyCount(keys.length, ctx);
    return map(ctx.store.delMany(table, keys), valuesOrEmpty);
  },
  hexist: ({ table, key }, { store }) => map(store.contains(table, key), (b) => okValues([bool(b)])),
  hmexist: ({ table, keys }, ctx) => {
    checkKeyCount(keys.length, ctx);
    return map(
      eachKey(keys, (k) => ctx.store.contains(table, k)),
      (bs) => okValues(bs.map(bool)),
    );
  },
  subscribe: ({ topic }, { pubsub, stream }) => {
    if (stream === undefined) throw errors.invalidCommand('SUBSCRIBE needs a stream to deliver messages on');
    return map(pubsub.subscribe(topic, stream), (id) => okValues([{ value: { $case: 'integer', value: BigInt(id) } }]));
  },
  unsubscribe: ({ topic, id }, { pubsub }) =>
    map(pubsub.unsubscribe(topic, id), (found) => {
      if (!found) throw errors.subscriptionNotFound(topic, id);
      return ok();
    }),
  // A fan-out too large for one slice answers once every subscriber has the message, so a
  // publisher cannot queue fan-outs faster than they are delivered.
  publish: ({ topic, data }, { pubsub, onPublished }) =>
    map(pubsub.publish(topic, data), (receivers) => {
      onPublished?.(receivers);
      return ok();
    }),
  hlen: ({ table }, { store }) => map(store.len(table), (n) => okValues([integer(n)])),
  hscan: ({ table, cursor, count }, { store }) => map(store.scan(table, cursor, pageSize(count)), scanPage),
  tables: ({ cursor, count }, { store }) => map(store.tables(cursor, pageSize(count)), tablesPage),
  hdrop: ({ table }, { store }) => map(store.drop(table), (n) => okValues([integer(n)])),
};

/** Runs one request against the store. Throws (or rejects) with a `KvError` for a bad request. */
export function dispatch(request: CommandRequest, ctx: CommandContext): MaybePromise<CommandResponse> {
  const data = request.requestData;
  if (data === undefined) throw errors.invalidCommand('the request has no command');
  const handler = handlers[data.$case] as Handler<CommandName> | undefined;
  if (handler === undefined) throw errors.invalidCommand(`unknown command ${String(data.$case)}`);
  return handler(data.value, ctx);
}
