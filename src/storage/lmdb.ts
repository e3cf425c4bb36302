/**
 * The persistent store, on LMDB (through lmdb-js): survives restarts and `kill -9`. Its key layout
 * and cursors are in lmdb-layout.ts; every table's key count is kept next to its entries, updated
 * in the same transaction as the writes, so HLEN is one lookup.
 *
 * Reads are synchronous: the pending writes first (pending-writes.ts), then a cache of hot values
 * (lmdb-read-cache.ts), then the database. Writes are read-modify-write actions run inside lmdb-js
 * transactions, gathered into batches that share one transaction and one disk sync (group commit);
 * how, and when a write is acknowledged, is in lmdb-writer.ts.
 */
import { closeSync, existsSync, openSync, readSync, statSync, unlinkSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { open, type RootDatabase } from 'lmdb';
import { Value } from '../protocol/generated/abi.js';
import { decodeValue } from '../protocol/decoder.js';
import { errors, KvError } from '../errors.js';
import {
  COUNTS_RANGE,
  countKey,
  countKeyOfEscaped,
  keyOfEntry,
  dropKey,
  DROPS_RANGE,
  tableOfDropKey,
  decodeCount,
  encodeCount,
  ENTRIES_END,
  LAYOUT_KEY,
  LAYOUT_VERSION,
  MARKER_KEY,
  readKey,
  type RangeStart,
  scanCursor,
  scanStart,
  tableOfCountKey,
  tablePrefixLength,
  tableRange,
  tablesCursor,
  tablesStart,
  writeKey,
} from './lmdb-layout.js';
import { DataDirLock, foreignDataDir, inspectDataDir, writeMarker } from './data-dir.js';
import { PendingWrites, type PendingEntry } from './pending-writes.js';
import { ReadCache } from './lmdb-read-cache.js';
import { isCommitFailure, LmdbWriter, type Durability } from './lmdb-writer.js';

export type { Durability } from './lmdb-writer.js';
import type { CommitObserver, Entry, Page, Store, TableInfo } from './store.js';

export { MAX_KEY_BYTES } from './lmdb-layout.js';

/** Tuning for `LmdbStore.open`. */
export interface LmdbStoreOptions {
  /**
   * Milliseconds to wait before committing, so that more concurrent writes share one disk sync
   * (fewer syncs, higher write latency). Default 0: commit on the next event-loop turn.
   */
  commitDelay?: number;
  /** Told how long each commit took and which writes it made durable (metrics and tracing). */
  commitObserver?: CommitObserver;
  /**
   * Bytes of decoded values kept in memory for hot reads (an estimate of what they keep alive);
   * 0 turns the cache off. Default {@link DEFAULT_CACHE_BYTES}.
   */
  cacheBytes?: number;
  /** When writes are acknowledged (see lmdb-writer.ts). Default: once committed and synced. */
  durability?: Durability;
}

/** The default budget of the read cache. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

type Db = RootDatabase<Buffer, Buffer>;

/** The persistent store (see the module comment for its layout and durability). */
export class LmdbStore implements Store {
  readonly #db: Db;
  /** Background work (drops) not yet settled, so that `close` can wait for it. */
  readonly #pending = new Set<Promise<unknown>>();
  /** Their effects, which every read applies over the committed state. */
  readonly #staged = new PendingWrites();
  /** Recently read committed values (see lmdb-read-cache.ts). */
  readonly #cache: ReadCache;
  /**
   * Tables whose drop is deleting entries in the background → resolves once it is done (true) or
   * stopped by `close` (false). Writes to those tables wait for it.
   */
  readonly #dropping = new Map<string, Promise<boolean>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  readonly #lock: DataDirLock;
  /** Gathers writes into transactions and acknowledges them (see lmdb-writer.ts). */
  readonly #writer: LmdbWriter;

  private constructor(
    /** The directory holding the LMDB environment. */
    readonly path: string,
    db: Db,
    lock: DataDirLock,
    options: LmdbStoreOptions,
  ) {
    this.#db = db;
    this.#lock = lock;
    this.#cache = new ReadCache(options.cacheBytes ?? DEFAULT_CACHE_BYTES);
    this.#writer = new LmdbWriter(db, options.durability ?? { mode: 'sync' }, options.commitObserver);
  }

  /**
   * Opens (creating it when missing) the store in directory `dir`, and locks it for this store
   * until `close`. Refuses, leaving it untouched, a directory holding anything that is not
   * protokv's (see data-dir.ts), and one another server (or store) holds.
   */
  static open(dir: string, options: LmdbStoreOptions = {}): LmdbStore {
    const kind = inspectDataDir(dir);
    if (kind !== 'new') checkLmdbHeader(dir);
    // An environment without protokv's marker is checked before anything is written to it.
    if (kind === 'unmarked-lmdb') checkProtokvContents(dir);
    const lock = DataDirLock.acquire(dir);
    try {
      const db = openEnvironment(dir, options);
      try {
        ensureLayout(db);
        if (kind !== 'marked') writeMarker(dir);
      } catch (err) {
        db.close().catch(() => undefined);
        throw err;
      }
      return new LmdbStore(dir, db, lock, options);
    } catch (err) {
      lock.release();
      throw err instanceof KvError ? err : errors.storage(`cannot open the store in ${dir}: ${message(err)}`, err);
    }
  }

  get(table: string, key: string): Value | undefined {
    const db = this.#live();
    if (!this.#staged.empty) {
      const t = this.#staged.table(table);
      const p = t?.entries.get(key);
      if (p !== undefined) return p.value;
      if (t !== undefined && t.dropTicket !== 0) return undefined;
    }
    return this.#cache.get(table, key) ?? this.#fetch(db, table, key);
  }

  contains(table: string, key: string): boolean {
    const db = this.#live();
    if (!this.#staged.empty) {
      const t = this.#staged.table(table);
      const p = t?.entries.get(key);
      if (p !== undefined) return p.value !== undefined;
      if (t !== undefined && t.dropTicket !== 0) return false;
    }
    if (this.#cache.get(table, key) !== undefined) return true;
    const k = readKey(table, key);
    return k !== undefined && this.#read(() => db.doesExist(k));
  }

  /** The committed value of a key, read from the database (and cached). */
  #fetch(db: Db, table: string, key: string): Value | undefined {
    const k = readKey(table, key);
    if (k === undefined) return undefined;
    let bytes: Buffer | undefined;
    try {
      // lmdb-js's shared buffer, valid until the next read: decoding copies what it keeps.
      bytes = db.getBinaryFast(k);
    } catch (err) {
      throw storageError('cannot read', err);
    }
    if (bytes === undefined) return undefined;
    const value = decode(bytes);
    if (this.#cache.enabled) this.#cache.set(table, key, value, bytes.length);
    return value;
  }

  getAll(table: string): Entry[] {
    return Array.from(this.iterate(table));
  }

  /**
   * A lazy cursor over the table: entries are read from the database as iteration proceeds, from
   * one snapshot, with the writes pending when iteration started applied over them. Finish the
   * iteration or end it early (`break`, `return()`): an abandoned one keeps its snapshot, so LMDB
   * cannot reuse the pages it sees.
   */
  *iterate(table: string): Generator<Entry> {
    const db = this.#live();
    const { start, end, prefixLength } = tableRange(table);
    const staged = this.#staged.table(table);
    const pending = staged === undefined ? undefined : new Map(staged.entries);
    try {
      if (staged === undefined || staged.dropTicket === 0) {
        for (const { key, value } of db.getRange({ start, end })) {
          const k = keyOfEntry(key, prefixLength);
          if (pending === undefined || !pending.has(k)) yield { key: k, value: decode(value) };
        }
      }
    } catch (err) {
      throw this.#closed ? errors.storage('the store is closed') : storageError('cannot read the table', err);
    }
    if (pending === undefined) return;
    for (const [key, p] of pending) if (p.value !== undefined) yield { key, value: p.value };
  }

  /** The committed count, corrected by the pending writes of the table (few: one commit's worth). */
  len(table: string): number {
    const db = this.#live();
    return this.#read(() => {
      const t = this.#staged.table(table);
      const hidden = t !== undefined && t.dropTicket !== 0;
      let n = hidden ? 0 : decodeCount(db.get(countKey(table)));
      if (t !== undefined) {
        for (const p of t.entries.values()) n += (p.value !== undefined ? 1 : 0) - (!hidden && db.doesExist(p.dbKey) ? 1 : 0);
      }
      return n;
    });
  }

  /**
   * A page in key byte order: the committed entries after the cursor, read lazily, merged with the
   * pending writes of the table after it; one more than asked tells whether another page follows.
   */
  scan(table: string, cursor: string, count: number): Page<Entry> {
    const db = this.#live();
    const { start, end, prefixLength } = tableRange(table);
    const from = scanStart(start, cursor);
    return this.#read(() => {
      const t = this.#staged.table(table);
      const committed: Iterable<Row> = t?.dropTicket ? [] : db.getRange({ ...from, end, limit: t === undefined ? count + 1 : undefined });
      const pending = t === undefined ? [] : pendingAfter(t.entries.values(), from);
      const rows = takeMerged(committed, pending, count + 1);
      const more = rows.length > count;
      if (more) rows.length = count;
      return {
        items: rows.map((r) => ({ key: keyOfEntry(r.key, prefixLength), value: r.staged ? r.decoded! : decode(r.value) })),
        cursor: more ? scanCursor(rows[count - 1].key, prefixLength) : '',
      };
    });
  }

  /** Like `scan`, over the table counts; a table with pending writes is listed with its `len`. */
  tables(cursor: string, count: number): Page<TableInfo> {
    const db = this.#live();
    const from = tablesStart(cursor);
    return this.#read(() => {
      const committed = db.getRange({ ...from, end: COUNTS_RANGE.end, limit: this.#staged.empty ? count + 1 : undefined });
      const pending: Row[] = [];
      for (const [name] of this.#staged.tables()) {
        const key = countKey(name);
        if (isAfter(key, from)) pending.push({ key, value: EMPTY_BUFFER, staged: true, name });
      }
      pending.sort(byKey);
      const items: TableInfo[] = [];
      let last: Buffer | undefined;
      let more = false;
      for (const row of mergeSorted(committed, pending)) {
        const keys = row.name !== undefined ? this.len(row.name) : decodeCount(row.value);
        if (keys === 0) continue;
        if (items.length === count) {
          more = true;
          break;
        }
        items.push({ name: row.name ?? tableOfCountKey(row.key), keys });
        last = row.key;
      }
      return { items, cursor: more && last !== undefined ? tablesCursor(last) : '' };
    });
  }

  /**
   * Resolves once every write acknowledged so far is synced to disk: at once in sync durability;
   * in periodic durability within the sync interval, normally within a commit or two.
   */
  synced(): Promise<void> {
    return this.#writer.synced();
  }

  /** Periodic durability: how many commits were acknowledged before they were synced. */
  get acknowledgedBeforeSync(): number {
    return this.#writer.acknowledgedBeforeSync;
  }

  /** Keys over every table, from the committed table counts: O(number of tables). */
  keyCount(): number {
    const db = this.#live();
    return this.#read(() => {
      let keys = 0;
      for (const { value } of db.getRange(COUNTS_RANGE)) keys += decodeCount(value);
      return keys;
    });
  }

  set(table: string, key: string, value: Value): Promise<Value | undefined> {
    try {
      const db = this.#live();
      const k = writeKey(table, key);
      const v = encode(value);
      const ticket = this.#staged.ticket();
      this.#staged.put(table, key, k, value, ticket);
      const written = this.#write(table, false, () => {
        const previous = decode(db.getBinaryFast(k));
        db.putSync(k, v);
        if (previous === undefined) addToCount(db, table, 1);
        return previous;
      });
      written.then(
        () => {
          this.#staged.settleKey(table, key, ticket);
          this.#cache.refresh(table, key, value, v.length);
        },
        () => this.#staged.settleKey(table, key, ticket),
      );
      return written;
    } catch (err) {
      return rejection(err);
    }
  }

  setMany(table: string, entries: readonly Entry[]): Promise<(Value | undefined)[]> {
    try {
      const db = this.#live();
      // Everything that can fail is done before the transaction, so it never starts half-valid.
      const writes = entries.map(({ key, value }) => [writeKey(table, key), encode(value)] as const);
      const ticket = this.#staged.ticket();
      entries.forEach(({ key, value }, i) => this.#staged.put(table, key, writes[i][0], value, ticket));
      const written = this.#write(table, true, () => {
        let added = 0;
        const previous = writes.map(([k, v]) => {
          const p = decode(db.getBinaryFast(k));
          db.putSync(k, v);
          if (p === undefined) added++;
          return p;
        });
        addToCount(db, table, added);
        return previous;
      });
      const keys = entries.map((e) => e.key);
      written.then(
        () => {
          this.#staged.settle(table, keys, ticket);
          entries.forEach(({ key, value }, i) => this.#cache.refresh(table, key, value, writes[i][1].length));
        },
        () => this.#staged.settle(table, keys, ticket),
      );
      return written;
    } catch (err) {
      return rejection(err);
    }
  }

  del(table: string, key: string): Promise<Value | undefined> {
    try {
      const db = this.#live();
      const k = readKey(table, key);
      if (k === undefined) return Promise.resolve(undefined);
      const ticket = this.#staged.ticket();
      this.#staged.put(table, key, k, undefined, ticket);
      const written = this.#write(table, false, () => {
        const previous = decode(db.getBinaryFast(k));
        if (previous !== undefined) {
          db.removeSync(k);
          addToCount(db, table, -1);
        }
        return previous;
      });
      written.then(
        () => {
          this.#staged.settleKey(table, key, ticket);
          this.#cache.delete(table, key);
        },
        () => this.#staged.settleKey(table, key, ticket),
      );
      return written;
    } catch (err) {
      return rejection(err);
    }
  }

  delMany(table: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    try {
      const db = this.#live();
      const ks = keys.map((key) => readKey(table, key));
      const ticket = this.#staged.ticket();
      keys.forEach((key, i) => {
        const k = ks[i];
        if (k !== undefined) this.#staged.put(table, key, k, undefined, ticket);
      });
      const written = this.#write(table, true, () => {
        let removed = 0;
        const previous = ks.map((k) => {
          if (k === undefined) return undefined;
          const p = decode(db.getBinaryFast(k));
          if (p !== undefined) {
            db.removeSync(k);
            removed++;
          }
          return p;
        });
        addToCount(db, table, -removed);
        return previous;
      });
      written.then(
        () => {
          this.#staged.settle(table, keys, ticket);
          for (const key of keys) this.#cache.delete(table, key);
        },
        () => this.#staged.settle(table, keys, ticket),
      );
      return written;
    } catch (err) {
      return rejection(err);
    }
  }

  /**
   * Removes the whole table. LMDB has no range delete, so this is one delete per key (O(n log n)),
   * and a million deletes in one transaction would hold the event loop for seconds (the transaction
   * callback runs on the main thread). So:
   * - a small table (up to `INLINE_DROP` keys) is dropped in one atomic transaction;
   * - a larger one in one atomic transaction that removes its count and writes a drop record, then
   *   in the background, `DROP_CHUNK` keys per transaction, the event loop running in between, and
   *   the drop record goes with the last chunk. The drop is acknowledged once the first
   *   transaction is committed: from then on it is durable, since opening the store finishes any
   *   drop whose record it finds. Until the background deletion is done, reads see the table as
   *   dropped (its committed entries are hidden) and writes to it wait, so that no later write is
   *   deleted with the old entries; other tables are not held up.
   */
  drop(table: string): Promise<number> {
    try {
      return this.#drop(table);
    } catch (err) {
      return rejection(err);
    }
  }

  #drop(table: string): Promise<number> {
    const db = this.#live();
    const ticket = this.#staged.ticket();
    const small = !this.#dropping.has(table) && this.len(table) <= INLINE_DROP;
    this.#staged.drop(table, ticket);
    // Writes queued before the drop may still cache what they wrote as they settle: the table's
    // cache is cleared again when the drop settles.
    this.#cache.deleteTable(table);
    const forget = () => {
      this.#staged.settle(table, [], ticket);
      this.#cache.deleteTable(table);
    };
    if (small) {
      const dropped = this.#write(table, true, () => dropNow(db, table));
      dropped.then(forget, forget);
      return dropped;
    }

    const started = this.#write(table, true, () => startDrop(db, table));
    let finished!: (done: boolean) => void;
    const gate = new Promise<boolean>((resolve) => (finished = resolve));
    this.#dropping.set(table, gate);
    const background = started
      .then(
        () => this.#deleteDropped(table),
        // Not started (it failed, or waited for an earlier drop that the closing store stopped):
        // nothing more was dropped; later writes may go ahead unless the store is closing.
        () => !this.#closed,
      )
      .then((done) => {
        forget();
        if (this.#dropping.get(table) === gate) this.#dropping.delete(table);
        finished(done);
      });
    this.#track(background);
    return started;
  }

  /**
   * Deletes the entries of a table whose drop was committed, a chunk per transaction, and its drop
   * record with the last chunk. A failed chunk (a full disk) is retried; closing the store stops
   * it (the record stays, and the next open finishes the drop). Resolves to whether it finished.
   */
  async #deleteDropped(table: string): Promise<boolean> {
    const db = this.#db;
    for (let failures = 0; ; ) {
      if (this.#closed) return false;
      try {
        if (!(await this.#writer.write(() => deleteChunk(db, table), false))) return true;
        failures = 0;
      } catch {
        if (this.#closed) return false;
        await sleep(Math.min(5000, 100 * 2 ** failures++));
      }
    }
  }

  /**
   * Waits for pending writes to be committed, then closes the environment. Later calls to `close`
   * share the first one's result.
   */
  close(): Promise<void> {
    this.#closed = true;
    return (this.#closing ??= this.#shutDown());
  }

  async #shutDown(): Promise<void> {
    // Background drops first: writes waiting for them are queued (or refused) as they end.
    await Promise.allSettled(this.#pending);
    await this.#writer.close();
    try {
      await this.#db.close();
    } catch (err) {
      throw storageError('cannot close the store', err);
    } finally {
      this.#lock.release();
    }
  }

  #live(): Db {
    if (this.#closed) throw errors.storage('the store is closed');
    return this.#db;
  }

  #read<T>(read: () => T): T {
    try {
      return read();
    } catch (err) {
      throw storageError('cannot read', err);
    }
  }

  /**
   * Queues `action` into the next batch of writes (see lmdb-writer.ts). The read-modify-write it
   * performs is atomic because it runs inside that batch's transaction. An `atomic` action runs in
   * a child transaction so that a failure part-way rolls all of its writes back (a plain
   * transaction keeps them). A write to a table whose drop is still deleting entries waits for it
   * (see `drop`).
   */
  #write<T>(table: string, atomic: boolean, action: () => T): Promise<T> {
    const dropping = this.#dropping.get(table);
    if (dropping === undefined) return this.#writer.write(action, atomic);
    return dropping.then((done) => {
      if (done) return this.#writer.write(action, atomic);
      throw errors.storage(`cannot write: the store closed before the drop of table ${JSON.stringify(table)} finished`);
    });
  }

  /** Keeps background work in the set `close` waits for until it settles. */
  #track(work: Promise<unknown>): void {
    this.#pending.add(work);
    const settle = () => this.#pending.delete(work);
    work.then(settle, settle);
  }
}

/**
 * A row of a listing: a committed one as lmdb-js reads it, or a pending one (`staged`), whose
 * `decoded` value is undefined for a delete; `name` is the table of a pending row of `tables`.
 */
interface Row {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly staged?: true;
  readonly decoded?: Value;
  readonly name?: string;
}

const EMPTY_BUFFER = Buffer.alloc(0);

/** A write's error as a rejection: callers of a write get its errors one way, whatever throws them. */
function rejection(err: unknown): Promise<never> {
  return Promise.reject(err instanceof KvError ? err : storageError('cannot write', err));
}

/** Whether `key` comes after the start of a range. */
function isAfter(key: Buffer, from: RangeStart): boolean {
  const c = Buffer.compare(key, from.start);
  return c > 0 || (c === 0 && !from.exclusiveStart);
}

const byKey = (a: Row, b: Row): number => Buffer.compare(a.key, b.key);

/** The pending writes of a table past `from`, in key order. */
function pendingAfter(entries: Iterable<PendingEntry>, from: RangeStart): Row[] {
  const rows: Row[] = [];
  for (const p of entries) {
    if (isAfter(p.dbKey, from)) rows.push({ key: p.dbKey, value: EMPTY_BUFFER, staged: true, decoded: p.value });
  }
  return rows.sort(byKey);
}

/**
 * Committed rows (read lazily, in key order) merged with pending ones (sorted): a pending row
 * replaces the committed row of the same key.
 */
function* mergeSorted(committed: Iterable<Row>, pending: readonly Row[]): Generator<Row> {
  let i = 0;
  for (const row of committed) {
    while (i < pending.length && Buffer.compare(pending[i].key, row.key) < 0) yield pending[i++];
    if (i < pending.length && Buffer.compare(pending[i].key, row.key) === 0) yield pending[i++];
    else yield row;
  }
  while (i < pending.length) yield pending[i++];
}

/** The first `limit` rows of a merged listing that are not pending deletes. */
function takeMerged(committed: Iterable<Row>, pending: readonly Row[], limit: number): Row[] {
  const rows: Row[] = [];
  if (limit === 0) return rows;
  for (const row of mergeSorted(committed, pending)) {
    if (row.staged && row.decoded === undefined) continue;
    if (rows.push(row) === limit) break;
  }
  return rows;
}

function openEnvironment(dir: string, options: LmdbStoreOptions & { readOnly?: boolean }): Db {
  try {
    return open<Buffer, Buffer>(dir, {
      // Without this, lmdb-js treats a path with a dot in its last segment as a file name.
      noSubdir: false,
      encoding: 'binary',
      keyEncoding: 'binary',
      commitDelay: options.commitDelay ?? 0,
      readOnly: options.readOnly ?? false,
    });
  } catch (err) {
    throw errors.storage(`cannot open the store in ${dir}: ${message(err)}`, err);
  }
}

/**
 * Checks, read-only, that an LMDB environment without protokv's marker holds only what protokv
 * writes: entries (a table name, 0x00, a key, all UTF-8, with a protobuf `Value`) and protokv's own
 * 0xFF records. It is then a data directory of an earlier protokv version, and is adopted.
 * Anything else is another program's environment: refused, untouched (LMDB's own lock file aside:
 * every reader registers there, and it is removed again if this check created it).
 */
function checkProtokvContents(dir: string): void {
  const lockFile = join(dir, 'lock.mdb');
  const hadLockFile = existsSync(lockFile);
  let db: Db | undefined;
  let why: string | undefined;
  try {
    db = openEnvironment(dir, { readOnly: true });
    for (const { key, value } of db.getRange({})) {
      if (key[0] === 0xff) {
        const own = [LAYOUT_KEY[1], COUNTS_RANGE.start[1], DROPS_RANGE.start[1], MARKER_KEY[1]];
        if (!own.includes(key[1])) why = `a record 0x${key.toString('hex').slice(0, 16)}… that protokv does not write`;
      } else if (tablePrefixLength(key) < 0 || !isUtf8(key)) {
        why = `a key 0x${key.toString('hex').slice(0, 16)}… that is not a protokv table and key`;
      } else {
        try {
          decodeValue(value);
        } catch {
          why = `a value under ${JSON.stringify(key.toString('utf8').slice(0, 40))} that is not a protokv value`;
        }
      }
      if (why !== undefined) break;
    }
  } catch (err) {
    why = `its LMDB environment cannot be read: ${message(err)}`;
  } finally {
    db?.close().catch(() => undefined);
  }
  if (why === undefined) return;
  if (!hadLockFile) {
    try {
      unlinkSync(lockFile);
    } catch {
      // Nothing to undo.
    }
  }
  throw foreignDataDir(dir, `it holds an LMDB environment with ${why}`);
}

/** Tables up to this many keys are dropped in one transaction (about 50 ms of deletes at most). */
const INLINE_DROP = 10_000;
/** Keys deleted per transaction when a larger table is dropped in the background. */
const DROP_CHUNK = 10_000;

/** Deletes up to `limit` entries of `table`, inside a write transaction; returns how many. */
function deleteSome(db: Db, table: string, limit: number): number {
  const { start, end } = tableRange(table);
  const keys = Array.from(db.getKeys({ start, end, limit }));
  for (const k of keys) db.removeSync(k);
  return keys.length;
}

/** Deletes every entry of a table and its count, inside a write transaction; returns how many. */
function dropNow(db: Db, table: string): number {
  let removed = 0;
  for (let n = DROP_CHUNK; n === DROP_CHUNK; removed += n) n = deleteSome(db, table, DROP_CHUNK);
  db.removeSync(countKey(table));
  return removed;
}

/** The first transaction of a background drop: the count goes, a drop record comes. */
function startDrop(db: Db, table: string): number {
  const k = countKey(table);
  const n = decodeCount(db.get(k));
  db.removeSync(k);
  db.putSync(dropKey(table), encodeCount(n));
  return n;
}

/** One chunk of a background drop; the drop record goes with the last. Returns whether more is left. */
function deleteChunk(db: Db, table: string): boolean {
  if (deleteSome(db, table, DROP_CHUNK) === DROP_CHUNK) return true;
  db.removeSync(dropKey(table));
  return false;
}

/** Finishes the drops a previous run left unfinished (stopped or killed mid-way), at open. */
function finishDrops(db: Db): void {
  const tables = Array.from(db.getKeys(DROPS_RANGE), tableOfDropKey);
  for (const table of tables) {
    db.transactionSync(() => {
      dropNow(db, table);
      db.removeSync(dropKey(table));
    });
  }
}

/** Adds `delta` to a table's key count, inside a write transaction; a count of 0 is removed. */
function addToCount(db: Db, table: string, delta: number): void {
  if (delta === 0) return;
  const k = countKey(table);
  const n = decodeCount(db.get(k)) + delta;
  if (n > 0) db.putSync(k, encodeCount(n));
  else db.removeSync(k);
}

/**
 * Makes sure the database has the current layout: a new one gets the layout version; one written
 * before tables were counted gets its counts computed from its entries (one pass, once), in the
 * same transaction that records the version.
 */
function ensureLayout(db: Db): void {
  const version = db.get(LAYOUT_KEY);
  if (version !== undefined) {
    const v = version.length === 1 ? version[0] : -1;
    if (v !== LAYOUT_VERSION) throw errors.storage(`the store's layout version ${v} is not supported (this protokv reads ${LAYOUT_VERSION})`);
    finishDrops(db);
    return;
  }
  const counts = new Map<string, number>();
  for (const key of db.getKeys({ end: ENTRIES_END })) {
    const length = tablePrefixLength(key);
    if (length < 0) throw errors.storage(`the database holds a key that is not a protokv entry (${key.toString('hex').slice(0, 40)})`);
    const escaped = key.toString('latin1', 0, length);
    counts.set(escaped, (counts.get(escaped) ?? 0) + 1);
  }
  db.transactionSync(() => {
    for (const [escaped, n] of counts) db.putSync(countKeyOfEscaped(Buffer.from(escaped, 'latin1')), encodeCount(n));
    db.putSync(LAYOUT_KEY, Buffer.from([LAYOUT_VERSION]));
  });
}

function encode(value: Value): Buffer {
  const inner = value.value;
  // String values, the common case, written directly: field 1, its length, its UTF-8 bytes (what
  // the generated encoder writes, without its growable buffer and final copy).
  if (inner?.$case === 'string') {
    const text = inner.value;
    const length = Buffer.byteLength(text);
    if (length < 0x4000) {
      const head = length < 0x80 ? 2 : 3;
      const bytes = Buffer.allocUnsafe(head + length);
      bytes[0] = 0x0a;
      if (head === 2) bytes[1] = length;
      else {
        bytes[1] = (length & 0x7f) | 0x80;
        bytes[2] = length >>> 7;
      }
      bytes.write(text, head, length, 'utf8');
      return bytes;
    }
  }
  try {
    const bytes = Value.encode(value).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (err) {
    throw errors.storage(`cannot encode the value: ${message(err)}`, err);
  }
}

function decode(bytes: Buffer): Value;
function decode(bytes: Buffer | undefined): Value | undefined;
function decode(bytes: Buffer | undefined): Value | undefined {
  if (bytes === undefined) return undefined;
  try {
    return decodeValue(bytes);
  } catch (err) {
    throw errors.storage(`a stored value is corrupt: ${message(err)}`, err);
  }
}

/** Whether `reason` is one of lmdb-js's own copies of a failed-commit error, already reported to the writer. */
export function isLmdbCommitFailure(reason: unknown): boolean {
  return isCommitFailure(reason);
}

function storageError(detail: string, err: unknown): KvError {
  return err instanceof KvError ? err : errors.storage(`${detail}: ${message(err)}`, err);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Layout of the first meta page of an LMDB data file as lmdb-js 3.x writes it (data format 2,
// 24-byte page header).
const P_META = 0x08;
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;

/**
 * Refuses a data file that is not an LMDB environment. The check must happen before LMDB opens
 * it: lmdb-js crashes the process (a native double free) when LMDB rejects a file.
 */
function checkLmdbHeader(dir: string): void {
  const file = join(dir, 'data.mdb');
  let head: Buffer;
  let size: number;
  try {
    size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    if (size === 0) return; // a new environment: LMDB initializes it
    head = Buffer.alloc(64);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    throw errors.storage(`cannot use ${dir} as the store directory: ${message(err)}`, err);
  }
  const le = endianness() === 'LE';
  const u16 = (at: number) => (le ? head.readUInt16LE(at) : head.readUInt16BE(at));
  const u32 = (at: number) => (le ? head.readUInt32LE(at) : head.readUInt32BE(at));
  const pageSize = u32(48);
  const valid =
    (u16(18) & P_META) !== 0 &&
    u32(24) === MDB_MAGIC &&
    (u32(28) & 0xffff) === MDB_DATA_VERSION &&
    pageSize >= 512 &&
    size >= 2 * pageSize;
  if (!valid) {
    throw errors.storage(
      `${file} is not an LMDB environment of a supported version (or it is truncated); it was left untouched`,
    );
  }
}
