/**
 * The persistent store's cache of hot values: decoded `Value`s by table and key, so that a read of
 * a recently read key is two map lookups, as on the memory store, instead of an LMDB lookup (a
 * native call, the key encoded to bytes, the value copied and decoded).
 *
 * Bounded in bytes (an estimate of what each entry keeps alive); when it is over its budget, the
 * oldest entries go first, except that an entry read since it was last considered gets a second
 * chance (the CLOCK approximation of least-recently-used: a hit only sets a flag, it moves nothing).
 *
 * It holds committed values only, and only what the database holds: the store removes a key here
 * when a write to it is called (the pending-writes overlay answers for it until the write settles,
 * and the next read after that fills the cache again from the database) and a whole table when it
 * is dropped.
 */
import type { Value } from '../protocol/generated/abi.js';

/** What a cached entry costs beyond its key and value: the entry, its map slot and the `Value` object. */
const ENTRY_OVERHEAD = 160;

interface CachedEntry {
  readonly table: string;
  readonly key: string;
  value: Value;
  bytes: number;
  /** Read since eviction last passed it. */
  referenced: boolean;
  /** Removed from its table's map; its slot in the eviction queue is skipped. */
  dead: boolean;
}

export class ReadCache {
  readonly #maxBytes: number;
  readonly #tables = new Map<string, Map<string, CachedEntry>>();
  /** Entries in insertion order, for eviction; dead ones are skipped (and compacted away). */
  #queue: CachedEntry[] = [];
  #head = 0;
  #dead = 0;
  #bytes = 0;

  /** @param maxBytes the budget; 0 keeps nothing. */
  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Whether the cache keeps anything at all. */
  get enabled(): boolean {
    return this.#maxBytes > 0;
  }

  /** The estimated bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  get(table: string, key: string): Value | undefined {
    const entry = this.#tables.get(table)?.get(key);
    if (entry === undefined) return undefined;
    entry.referenced = true;
    return entry.value;
  }

  /** Caches the committed `value` of a key, whose stored encoding is `storedBytes` long. */
  set(table: string, key: string, value: Value, storedBytes: number): void {
    const bytes = ENTRY_OVERHEAD + 2 * (key.length + storedBytes);
    if (bytes > this.#maxBytes) return;
    let entries = this.#tables.get(table);
    if (entries === undefined) this.#tables.set(table, (entries = new Map<string, CachedEntry>()));
    const existing = entries.get(key);
    if (existing !== undefined) {
      this.#bytes += bytes - existing.bytes;
      existing.value = value;
      existing.bytes = bytes;
    } else {
      const entry: CachedEntry = { table, key, value, bytes, referenced: false, dead: false };
      entries.set(key, entry);
      this.#queue.push(entry);
      this.#bytes += bytes;
    }
    if (this.#bytes > this.#maxBytes) this.#evict();
  }

  delete(table: string, key: string): void {
    const entries = this.#tables.get(table);
    const entry = entries?.get(key);
    if (entry === undefined) return;
    entries!.delete(key);
    if (entries!.size === 0) this.#tables.delete(table);
    this.#bury(entry);
  }

  /** Forgets every entry of `table`. */
  deleteTable(table: string): void {
    const entries = this.#tables.get(table);
    if (entries === undefined) return;
    this.#tables.delete(table);
    for (const entry of entries.values()) this.#bury(entry);
  }

  clear(): void {
    this.#tables.clear();
    this.#queue = [];
    this.#head = 0;
    this.#dead = 0;
    this.#bytes = 0;
  }

  #bury(entry: CachedEntry): void {
    entry.dead = true;
    this.#bytes -= entry.bytes;
    this.#dead++;
    // Deletes alone never trigger eviction, so the queue is compacted once it is mostly dead.
    if (this.#dead > 1024 && this.#dead > (this.#queue.length - this.#head) / 2) this.#compact();
  }

  #evict(): void {
    while (this.#bytes > this.#maxBytes && this.#head < this.#queue.length) {
      const entry = this.#queue[this.#head++];
      if (entry.dead) {
        this.#dead--;
        continue;
      }
      if (entry.referenced) {
        entry.referenced = false;
        this.#queue.push(entry);
        continue;
      }
      const entries = this.#tables.get(entry.table)!;
      entries.delete(entry.key);
      if (entries.size === 0) this.#tables.delete(entry.table);
      entry.dead = true;
      this.#bytes -= entry.bytes;
    }
    if (this.#head > 1024 && this.#head > this.#queue.length / 2) this.#compact();
  }

  #compact(): void {
    this.#queue = this.#queue.slice(this.#head).filter((entry) => !entry.dead);
    this.#head = 0;
    this.#dead = 0;
  }
}
