/**
 * The storage contract every protokv store implements.
 *
 * Tables are named hashes of string keys to typed values; a table exists once something is
 * written to it and a missing table behaves as empty. Methods may answer synchronously (a value)
 * or asynchronously (a promise): the memory store never allocates a promise, the persistent store
 * reads synchronously and returns a promise only for writes, which resolve once durable.
 * Callers must accept both (see `isPromise`).
 */
import type { Value } from '../protocol/generated/abi.js';

/** A result that is available now or later. */
export type MaybePromise<T> = T | Promise<T>;

/** A key and its value, as stores hand them out. */
export interface Entry {
  readonly key: string;
  readonly value: Value;
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
  /** Waits for pending writes, then releases the store. Later calls fail. */
  close(): Promise<void>;
  /**
   * Optional: whether the store can serve requests now (e.g. its engine is reachable), asked by
   * the readiness probe (`/readyz`). A store without it is ready while open.
   */
  health?(): MaybePromise<StoreHealth>;
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

/** What a store's `health()` reports. */
export interface StoreHealth {
  readonly healthy: boolean;
  /** What is wrong, when something is. */
  readonly detail?: string;
}

/** True for promises (and other thenables) — the cheap test the hot path uses. */
export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}
