/**
 * The effects of writes that were called but whose transaction has not yet settled, so that the
 * persistent store can answer reads as if they had been applied (read your writes, SPEC 1.6)
 * while keeping group commit and durable acknowledgements.
 *
 * Every read consults this first and the committed database second. A write is staged here when it
 * is called and forgotten when its transaction settles: once committed, the database holds it (and
 * lmdb-js has renewed its read snapshot before the write's promise settles); once failed, reads
 * fall back to what was actually committed, which is what was acknowledged.
 *
 * Only the latest pending write of a key is kept: each write carries a ticket, and settling a
 * ticket forgets only the entries it still owns. A pending drop hides the table's committed
 * entries until it settles; writes called after it are staged on top.
 */
import type { Value } from '../protocol/generated/abi.js';

/** The latest pending write of one key. */
export interface PendingEntry {
  /** The key in the database (its bytes order entries). */
  readonly dbKey: Buffer;
  /** The value written, or `undefined` for a delete. */
  readonly value: Value | undefined;
  readonly ticket: number;
}

/** The pending writes of one table. */
export interface PendingTable {
  /** Key → latest pending write. */
  readonly entries: Map<string, PendingEntry>;
  /** The ticket of a pending drop of the table (its committed entries are hidden), or 0. */
  dropTicket: number;
}

export class PendingWrites {
  readonly #tables = new Map<string, PendingTable>();
  #lastTicket = 0;

  /** Whether nothing is pending (the hot path's shortcut). */
  get empty(): boolean {
    return this.#tables.size === 0;
  }

  /** A new ticket, for the next write. */
  ticket(): number {
    return ++this.#lastTicket;
  }

  /** The pending writes of `table`, if any. */
  table(table: string): PendingTable | undefined {
    return this.#tables.get(table);
  }

  /** Every table with pending writes. */
  tables(): IterableIterator<[string, PendingTable]> {
    return this.#tables.entries();
  }

  /** Stages a write of `key` (`value` undefined: a delete). */
  put(table: string, key: string, dbKey: Buffer, value: Value | undefined, ticket: number): void {
    this.#writable(table).entries.set(key, { dbKey, value, ticket });
  }

  /** Stages a drop of `table`: earlier pending writes of it are superseded. */
  drop(table: string, ticket: number): void {
    const t = this.#writable(table);
    t.entries.clear();
    t.dropTicket = ticket;
  }

  /** Forgets what `ticket` staged for `keys` of `table` (and a drop), unless later writes replaced it. */
  settle(table: string, keys: Iterable<string>, ticket: number): void {
    const t = this.#tables.get(table);
    if (t === undefined) return;
    for (const key of keys) {
      if (t.entries.get(key)?.ticket === ticket) t.entries.delete(key);
    }
    if (t.dropTicket === ticket) t.dropTicket = 0;
    if (t.entries.size === 0 && t.dropTicket === 0) this.#tables.delete(table);
  }

  /** `settle` for a single-key write (the common case), without a list of keys. */
  settleKey(table: string, key: string, ticket: number): void {
    const t = this.#tables.get(table);
    if (t === undefined) return;
    if (t.entries.get(key)?.ticket === ticket) t.entries.delete(key);
    if (t.entries.size === 0 && t.dropTicket === 0) this.#tables.delete(table);
  }

  #writable(table: string): PendingTable {
    let t = this.#tables.get(table);
    if (t === undefined) {
      t = { entries: new Map(), dropTicket: 0 };
      this.#tables.set(table, t);
    }
    return t;
  }
}
