/**
 * The storage contract every protokv store implements.
 *
 * Tables are named hashes of string keys to typed values; a table exists once something is
 * written to it and a missing table behaves as empty. Methods may answer synchronously (a value)
 * or asynchronously (a promise): the memory store never allocates a promise, the persistent store
 * reads synchronously and returns a promise only for writes, which resolve once durable.
 * Callers must accept both (see `isPromise`).
 *
 * Read your writes: a read issued after a write was called — even before that write's promise
 * resolved — sees it, on every store and through every read method.
 */
import type { Value } from '../protocol/generated/abi.js';

/** A result that is available now or later. */
export type MaybePromise<T> = T | Promise<T>;

/** A key and its value, as stores hand them out. */
export interface Entry {
  readonly key: string;
  readonly value: Value;
}

/** One page of a cursor-based listing; `cursor` is "" when the listing is complete. */
export interface Page<T> {
  readonly items: T[];
  readonly cursor: string;
}

/** A table's name and its number of keys. */
export interface TableInfo {
  readonly name: string;
  readonly keys: number;
}

export interface Store {
  /** The value of `key` in `table`, or `undefined` when absent. */
  get(table: string, key: string): MaybePromise<Value | undefined>;
  /** Stores `value`; resolves to the previous value, or `undefined` when the key was new. */
  set(table: string, key: string, value: Value): MaybePromise<Value | undefined>;
  /**
   * Stores every entry in one atomic write; resolves to the previous value of each, in order.
   * A key named twice ends with its last value; its second previous value is its first new one.
   */
  setMany(table: string, entries: readonly Entry[]): MaybePromise<(Value | undefined)[]>;
  /** Whether `key` exists in `table`. */
  contains(table: string, key: string): MaybePromise<boolean>;
  /** Removes `key`; resolves to the removed value, or `undefined` when it was absent. */
  del(table: string, key: string): MaybePromise<Value | undefined>;
  /** Removes every key in one atomic write; resolves to the removed value of each, in order. */
  delMany(table: string, keys: readonly string[]): MaybePromise<(Value | undefined)[]>;
  /** Every entry of `table` (empty for a missing table). Order is unspecified. */
  getAll(table: string): MaybePromise<Entry[]>;
  /** Iterates `table` without loading it whole. */
  iterate(table: string): Iterable<Entry> | AsyncIterable<Entry>;
  /** Number of keys in `table` (0 when missing), in O(1) or O(log n). */
  len(table: string): MaybePromise<number>;
  /**
   * One page of `table` starting at `cursor` ("" to start): at most `count` entries (count >= 1,
   * already validated by the caller) and the cursor of the next page ("" when done). A key present
   * for the whole scan is returned at least once; a key absent for the whole scan never. A full
   * scan costs O(n log n) or less and no page loads the whole table. A malformed cursor throws
   * the 400 error `errors.invalidCursor(...)` (errors.ts).
   */
  scan(table: string, cursor: string, count: number): MaybePromise<Page<Entry>>;
  /** One page of the names of non-empty tables with their key counts; same paging rules. */
  tables(cursor: string, count: number): MaybePromise<Page<TableInfo>>;
  /** Removes the whole table atomically; resolves to the number of keys removed (0 when missing). */
  drop(table: string): MaybePromise<number>;
  /** Waits for pending writes, then releases the store. Later calls fail. */
  close(): Promise<void>;
  /**
   * Whether the store can serve requests right now, for readiness checks. Optional: a store
   * without it is ready while open. A networked store answers from its latest health probe.
   */
  healthy?(): boolean;
  /** Optional: the number of keys over every table, for the `protokv_store_keys` gauge; called on each scrape, so cheap. */
  keyCount?(): MaybePromise<number>;
}

/**
 * Told about each commit of a store that commits writes in batches (the persistent store), for
 * metrics and tracing. Whatever `queued` returns when a write is queued comes back, with the
 * other writes of its commit, once that commit is durable (or failed). Times are `performance.now()`.
 */
export interface CommitObserver<Tag = unknown> {
  queued(): Tag;
  committed(startedAt: number, endedAt: number, writes: readonly Tag[], failed: boolean): void;
}

/** True for promises (and other thenables) — the cheap test the hot path uses. */
export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}
