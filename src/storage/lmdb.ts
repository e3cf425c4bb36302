/**
 * The persistent store, on LMDB (through lmdb-js): survives restarts and `kill -9`.
 *
 * Layout: one LMDB environment, its root database, raw binary keys and values.
 * - A key is `escape(table) 0x00 key` in UTF-8. Table names are escaped so they never contain a
 *   0x00 byte, which makes `escape(table) 0x00` a prefix that no other table's keys start with:
 *   a table is the contiguous key range `[escape(table) 0x00, escape(table) 0x01)`.
 *   (lmdb-js array keys were not used: its ordered-binary encoding writes strings of 64 characters
 *   or more without escaping NUL, so tables named `t` and `t + "\0…"` could overlap.)
 * - A value is the protobuf encoding of `Value`, so its type survives restarts.
 *
 * Reads are synchronous. Writes run as lmdb-js asynchronous transactions: everything issued in one
 * event-loop turn shares one transaction and one disk sync (group commit), and a write's promise
 * resolves only after that transaction is committed and synced to disk.
 */
import { closeSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { Value } from '../protocol/generated/abi.js';
import { decodeValue } from '../protocol/decoder.js';
import { errors, KvError } from '../errors.js';
import type { CommitObserver, Entry, Store } from './store.js';

/** The largest key lmdb-js accepts with its default page size. */
export const MAX_KEY_BYTES = 1978;

/** Tuning for `LmdbStore.open`. */
export interface LmdbStoreOptions {
  /**
   * Milliseconds to wait before committing, so that more concurrent writes share one disk sync
   * (fewer syncs, higher write latency). Default 0: commit on the next event-loop turn.
   */
  commitDelay?: number;
  /** Told how long each commit took and which writes it made durable (metrics and tracing). */
  commitObserver?: CommitObserver;
}

/** The writes made durable by one commit, gathered for the commit observer. */
interface CommitGroup {
  startedAt: number;
  endedAt: number;
  tags: unknown[];
  failed: boolean;
}

type Db = RootDatabase<Buffer, Buffer>;

/** The persistent store (see the module comment for its layout and durability). */
export class LmdbStore implements Store {
  readonly #db: Db;
  /** Writes not yet settled, so that `close` can wait for them. */
  readonly #pending = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #observer: CommitObserver | undefined;
  /** The writes settling in this event-loop turn: those of one commit. */
  #settling: CommitGroup | undefined;

  private constructor(
    /** The directory holding the LMDB environment. */
    readonly path: string,
    db: Db,
    observer: CommitObserver | undefined,
  ) {
    this.#db = db;
    this.#observer = observer;
  }

  /**
   * Opens (creating it when missing) the store in directory `dir`.
   * Fails with a STORAGE error when `dir` holds something that is not an LMDB environment,
   * which is left untouched.
   */
  static open(dir: string, options: LmdbStoreOptions = {}): LmdbStore {
    prepareDirectory(dir);
    try {
      const db = open<Buffer, Buffer>(dir, {
        // Without this, lmdb-js treats a path with a dot in its last segment as a file name.
        noSubdir: false,
        encoding: 'binary',
        keyEncoding: 'binary',
        commitDelay: options.commitDelay ?? 0,
      });
      return new LmdbStore(dir, db, options.commitObserver);
    } catch (err) {
      throw errors.storage(`cannot open the store in ${dir}: ${message(err)}`, err);
    }
  }

  get(table: string, key: string): Value | undefined {
    const db = this.#live();
    const k = readKey(table, key);
    return k === undefined ? undefined : this.#read(() => decode(db.get(k)));
  }

  contains(table: string, key: string): boolean {
    const db = this.#live();
    const k = readKey(table, key);
    return k !== undefined && this.#read(() => db.doesExist(k));
  }

  getAll(table: string): Entry[] {
    return Array.from(this.iterate(table));
  }

  /**
   * A lazy cursor over the table: entries are read from the database as iteration proceeds, from
   * one snapshot. Finish the iteration or end it early (`break`, `return()`): an abandoned one
   * keeps its snapshot, so LMDB cannot reuse the pages it sees.
   */
  *iterate(table: string): Generator<Entry> {
    const db = this.#live();
    const prefix = tableName(table);
    const start = Buffer.from(`${prefix}\0`);
    try {
      for (const { key, value } of db.getRange({ start, end: Buffer.from(`${prefix}\x01`) })) {
        yield { key: key.toString('utf8', start.length), value: decode(value) };
      }
    } catch (err) {
      throw this.#closed ? errors.storage('the store is closed') : storageError('cannot read the table', err);
    }
  }

  async set(table: string, key: string, value: Value): Promise<Value | undefined> {
    const db = this.#live();
    const k = writeKey(table, key);
    const v = encode(value);
    return await this.#write(false, () => {
      const previous = decode(db.get(k));
      db.putSync(k, v);
      return previous;
    });
  }

  async setMany(table: string, entries: readonly Entry[]): Promise<(Value | undefined)[]> {
    const db = this.#live();
    // Everything that can fail is done before the transaction, so it never starts half-valid.
    const writes = entries.map(({ key, value }) => [writeKey(table, key), encode(value)] as const);
    return await this.#write(true, () =>
      writes.map(([k, v]) => {
        const previous = decode(db.get(k));
        db.putSync(k, v);
        return previous;
      }),
    );
  }

  async del(table: string, key: string): Promise<Value | undefined> {
    const db = this.#live();
    const k = readKey(table, key);
    if (k === undefined) return undefined;
    return await this.#write(false, () => {
      const previous = decode(db.get(k));
      if (previous !== undefined) db.removeSync(k);
      return previous;
    });
  }

  async delMany(table: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    const db = this.#live();
    const ks = keys.map((key) => readKey(table, key));
    return await this.#write(true, () =>
      ks.map((k) => {
        if (k === undefined) return undefined;
        const previous = decode(db.get(k));
        if (previous !== undefined) db.removeSync(k);
        return previous;
      }),
    );
  }

  /** Keys over every table, from LMDB's own count: O(1). */
  keyCount(): number {
    return (this.#live().getStats() as { entryCount: number }).entryCount;
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
    await Promise.allSettled(this.#pending);
    try {
      await this.#db.close();
    } catch (err) {
      throw storageError('cannot close the store', err);
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
   * Queues `action` into the next lmdb-js write transaction. The read-modify-write it performs is
   * atomic because it runs inside that transaction. An `atomic` action runs in a child transaction
   * so that a failure part-way rolls all of its writes back (a plain transaction keeps them).
   */
  #write<T>(atomic: boolean, action: () => T): Promise<T> {
    let queued: Promise<T>;
    try {
      queued = atomic ? this.#db.childTransaction(action) : this.#db.transaction(action);
    } catch (err) {
      queued = Promise.reject(storageError('cannot write', err));
    }
    const committed = queued.catch(async (err: unknown) => {
      throw storageError('cannot write', await commitFailureCause(err));
    });
    this.#pending.add(committed);
    const settle = () => this.#pending.delete(committed);
    committed.then(settle, settle);
    if (this.#observer !== undefined) this.#observe(committed, this.#observer);
    return committed;
  }

  /**
   * Reports `write` to the commit observer with the other writes of its commit. The writes of one
   * commit settle together, in one event-loop turn, so the writes settling in a turn are taken as
   * one commit, timed from the first of them being queued to their settling.
   */
  #observe(write: Promise<unknown>, observer: CommitObserver): void {
    const tag = observer.queued();
    const queuedAt = performance.now();
    const settled = (failed: boolean): void => {
      let group = this.#settling;
      if (group === undefined) {
        const created: CommitGroup = { startedAt: queuedAt, endedAt: performance.now(), tags: [], failed: false };
        this.#settling = group = created;
        setImmediate(() => {
          this.#settling = undefined;
          observer.committed(created.startedAt, created.endedAt, created.tags, created.failed);
        });
      }
      group.startedAt = Math.min(group.startedAt, queuedAt);
      group.tags.push(tag);
      group.failed ||= failed;
    };
    write.then(
      () => settled(false),
      () => settled(true),
    );
  }
}

/** Escapes U+0000 and U+0001 (the only characters encoded with bytes 0x00 and 0x01). */
function tableName(table: string): string {
  return table.replaceAll('\x01', '\x01\x02').replaceAll('\0', '\x01\x01');
}

function entryKey(table: string, key: string): Buffer {
  return Buffer.from(`${tableName(table)}\0${key}`);
}

/** The database key for a write; a key LMDB cannot hold is refused. */
function writeKey(table: string, key: string): Buffer {
  const k = entryKey(table, key);
  if (k.length > MAX_KEY_BYTES) {
    throw errors.storage(
      `key too long: the table name and key take ${k.length} bytes encoded, the limit is ${MAX_KEY_BYTES} bytes`,
    );
  }
  return k;
}

/** The database key for a lookup, or `undefined` for a key too long to have been stored. */
function readKey(table: string, key: string): Buffer | undefined {
  const k = entryKey(table, key);
  return k.length > MAX_KEY_BYTES ? undefined : k;
}

function encode(value: Value): Buffer {
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

/**
 * lmdb-js rejects a failed commit with a generic error whose `commitError` promise holds the real
 * cause (disk full, I/O error). Awaiting it gives clients that cause, and handles that promise,
 * which would otherwise be an unhandled rejection.
 */
async function commitFailureCause(err: unknown): Promise<unknown> {
  const inner = (err as { commitError?: unknown } | null)?.commitError;
  if (!(inner instanceof Promise)) return err;
  try {
    await inner;
    return err;
  } catch (cause) {
    return cause;
  }
}

/** Whether `reason` is one of lmdb-js's own copies of a failed-commit error, already reported to the writer. */
export function isLmdbCommitFailure(reason: unknown): boolean {
  return reason instanceof Error && (reason as { commitError?: unknown }).commitError instanceof Promise;
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
 * Creates `dir` when missing, and refuses a data file that is not an LMDB environment. The check
 * must happen here: lmdb-js crashes the process (a native double free) when LMDB rejects a file.
 */
function prepareDirectory(dir: string): void {
  const file = join(dir, 'data.mdb');
  let head: Buffer;
  let size: number;
  try {
    mkdirSync(dir, { recursive: true });
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
