/**
 * The memory store: tables of JavaScript `Map`s. Every operation is synchronous, so requests on
 * it never allocate a promise. Data is lost when the process exits.
 */
import type { Value } from '../protocol/generated/abi.js';
import { errors } from '../errors.js';
import type { Entry, Store } from './store.js';

export class MemoryStore implements Store {
  readonly #tables = new Map<string, Map<string, Value>>();
  #closed = false;

  get(table: string, key: string): Value | undefined {
    return this.#read(table)?.get(key);
  }

  set(table: string, key: string, value: Value): Value | undefined {
    const t = this.#writable(table);
    const prev = t.get(key);
    t.set(key, value);
    return prev;
  }

  setMany(table: string, entries: readonly Entry[]): (Value | undefined)[] {
    const t = this.#writable(table);
    return entries.map(({ key, value }) => {
      const prev = t.get(key);
      t.set(key, value);
      return prev;
    });
  }

  contains(table: string, key: string): boolean {
    return this.#read(table)?.has(key) ?? false;
  }

  del(table: string, key: string): Value | undefined {
    const t = this.#read(table);
    if (t === undefined) return undefined;
    const prev = t.get(key);
    if (prev !== undefined) {
      t.delete(key);
      if (t.size === 0) this.#tables.delete(table);
    }
    return prev;
  }

  delMany(table: string, keys: readonly string[]): (Value | undefined)[] {
    return keys.map((key) => this.del(table, key));
  }

  getAll(table: string): Entry[] {
    return Array.from(this.iterate(table));
  }

  *iterate(table: string): Generator<Entry> {
    const t = this.#read(table);
    if (t === undefined) return;
    for (const [key, value] of t) yield { key, value };
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#tables.clear();
    return Promise.resolve();
  }

  #read(table: string): Map<string, Value> | undefined {
    if (this.#closed) throw errors.storage('the store is closed');
    return this.#tables.get(table);
  }

  #writable(table: string): Map<string, Value> {
    let t = this.#read(table);
    if (t === undefined) {
      t = new Map();
      this.#tables.set(table, t);
    }
    return t;
  }
}
