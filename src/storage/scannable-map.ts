/**
 * A string-keyed map that can also be listed a page at a time with a stateless cursor, for the
 * memory store's tables and its list of tables.
 *
 * Why this shape: a JavaScript `Map` keeps insertion order but cannot seek, so a cursor into it
 * would have to be a live iterator held by the server. Keeping the keys sorted (a B-tree or a skip
 * list) would let a cursor seek, but would make every new key cost O(log n) and allocate, on the
 * store whose point is to be the fastest. Instead every key gets a sequence number when it is
 * inserted, and the map keeps its slots in that (insertion) order:
 * - `get`/`set`/`delete` stay O(1): a `Map` from key to slot index, plus plain arrays of slots;
 *   overwriting a key keeps its slot, so a key present for a whole scan is listed exactly once;
 * - a cursor is the sequence number of the last slot returned; the next page starts at the first
 *   slot after it, found by binary search (sequence numbers only grow along the slots), so a
 *   page costs O(log n + count) and a full scan O(n);
 * - deleting leaves a hole, and the slots are compacted once holes outnumber live keys — O(n), but
 *   amortized over at least n/2 deletes. Compaction keeps sequence numbers, so cursors survive it.
 * A key deleted and inserted again gets a new sequence number (it was absent part of the scan).
 */
export class ScannableMap<V> {
  /** Key → index of its slot. */
  readonly #index = new Map<string, number>();
  /** Slots: key (undefined for a hole), value, sequence number. */
  #keys: (string | undefined)[] = [];
  #values: (V | undefined)[] = [];
  #seqs: number[] = [];
  #nextSeq = 1;
  #holes = 0;
  /** Bumped by each compaction, so iterators know slot indexes moved. */
  #epoch = 0;

  get size(): number {
    return this.#index.size;
  }

  get(key: string): V | undefined {
    const slot = this.#index.get(key);
    return slot === undefined ? undefined : this.#values[slot];
  }

  has(key: string): boolean {
    return this.#index.has(key);
  }

  /** Stores `value`; returns the previous value, or `undefined` when the key was new. */
  set(key: string, value: V): V | undefined {
    const slot = this.#index.get(key);
    if (slot !== undefined) {
      const previous = this.#values[slot];
      this.#values[slot] = value;
      return previous;
    }
    this.#index.set(key, this.#keys.length);
    this.#keys.push(key);
    this.#values.push(value);
    this.#seqs.push(this.#nextSeq++);
    return undefined;
  }

  /** Removes `key`; returns its value, or `undefined` when it was absent. */
  delete(key: string): V | undefined {
    const slot = this.#index.get(key);
    if (slot === undefined) return undefined;
    const previous = this.#values[slot];
    this.#index.delete(key);
    this.#keys[slot] = undefined;
    this.#values[slot] = undefined;
    if (++this.#holes > 1024 && this.#holes > this.#index.size) this.#compact();
    return previous;
  }

  /** Every live entry through `fn`, in slot order: one pass, no iterator (for reading a table whole). */
  map<R>(fn: (key: string, value: V) => R): R[] {
    const out: R[] = [];
    const keys = this.#keys;
    const values = this.#values;
    for (let slot = 0; slot < keys.length; slot++) {
      const key = keys[slot];
      if (key !== undefined) out.push(fn(key, values[slot] as V));
    }
    return out;
  }

  /** Live entries in slot order; safe against writes (and compaction) between steps. */
  *entries(): Generator<[string, V]> {
    let epoch = this.#epoch;
    let slot = 0;
    let lastSeq = 0;
    for (;;) {
      if (epoch !== this.#epoch) {
        epoch = this.#epoch;
        slot = this.#firstSlotAfter(lastSeq);
      }
      if (slot >= this.#keys.length) return;
      const key = this.#keys[slot];
      lastSeq = this.#seqs[slot];
      const value = this.#values[slot];
      slot++;
      if (key !== undefined) yield [key, value as V];
    }
  }

  /**
   * Up to `count` live entries after sequence number `after` (0: from the start), and the
   * sequence number to resume after — 0 when no entry is left.
   */
  page(after: number, count: number): { entries: [string, V][]; next: number } {
    const entries: [string, V][] = [];
    const keys = this.#keys;
    let slot = this.#firstSlotAfter(after);
    for (; slot < keys.length && entries.length < count; slot++) {
      const key = keys[slot];
      if (key !== undefined) entries.push([key, this.#values[slot] as V]);
    }
    // Skip trailing holes so that a page ending the map says so at once.
    while (slot < keys.length && keys[slot] === undefined) slot++;
    return { entries, next: slot < keys.length ? this.#seqs[slot - 1] : 0 };
  }

  /** The index of the first slot whose sequence number is greater than `seq`. */
  #firstSlotAfter(seq: number): number {
    const seqs = this.#seqs;
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[mid] <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #compact(): void {
    const keys: string[] = [];
    const values: V[] = [];
    const seqs: number[] = [];
    for (let slot = 0; slot < this.#keys.length; slot++) {
      const key = this.#keys[slot];
      if (key === undefined) continue;
      this.#index.set(key, keys.length);
      keys.push(key);
      values.push(this.#values[slot] as V);
      seqs.push(this.#seqs[slot]);
    }
    this.#keys = keys;
    this.#values = values;
    this.#seqs = seqs;
    this.#holes = 0;
    this.#epoch++;
  }
}
