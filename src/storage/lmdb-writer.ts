/**
 * How the persistent store's writes become LMDB transactions, and when they are acknowledged.
 *
 * Writes are gathered into batches, one lmdb-js transaction callback per batch. The first write
 * after a batch closed opens the next one and queues its transaction; every write called before
 * that transaction begins joins the batch, in call order. lmdb-js's write thread begins the
 * transaction once the previous one is committed, and runs the batch's callback on the main thread:
 * it closes the batch and applies its writes one after the other (each read-modify-write sees the
 * ones before it; an atomic one runs in a child transaction, rolled back whole if it throws). So
 * while one transaction commits and syncs, the next batch gathers — requests decoded, values
 * encoded, writes staged for reads — and each transaction, each disk sync, carries every write that
 * arrived meanwhile: one transaction callback and one promise from lmdb-js per batch, not per write.
 * In sync mode the next transaction is queued only once the previous one is synced (see `#waiting`).
 *
 * Durability (see {@link Durability}):
 * - `sync`: a write is acknowledged once its transaction is committed and synced. lmdb-js resolves
 *   a transaction only after the commit's fdatasync of the data file and the synchronous write of
 *   the meta page that records it as flushed, so an acknowledged write survives a crash of the
 *   process and a power loss.
 * - `periodic`: a write is acknowledged once its transaction is committed: written to the data file
 *   (the OS page cache) and visible to every reader, before the sync that follows. lmdb-js
 *   (overlapping sync) syncs in the background after each commit, several commits sharing one sync
 *   when they come faster than the disk syncs; should syncs fall behind so that an acknowledged
 *   write has waited `intervalMs` for one, acknowledgements wait for the syncs until they catch up.
 *   A crash of the process loses nothing acknowledged: LMDB, reopened on the same boot, takes the
 *   latest commit, which the page cache holds. A power loss (or an OS crash) reopens at the latest
 *   synced commit, losing the writes acknowledged after it: at most those of the last `intervalMs`.
 */
import type { RootDatabase } from 'lmdb';
import { errors, KvError } from '../errors.js';
import { decodeCount, encodeCount, MARKER_KEY } from './lmdb-layout.js';
import type { CommitObserver } from './store.js';

type Db = RootDatabase<Buffer, Buffer>;

/** When a write of the persistent store is acknowledged. */
export type Durability =
  | { readonly mode: 'sync' }
  | {
      readonly mode: 'periodic';
      /** The longest an acknowledged write may wait to be synced to disk, in milliseconds. */
      readonly intervalMs: number;
    };

/** One write of a batch. */
interface Write {
  readonly action: () => unknown;
  readonly atomic: boolean;
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: unknown) => void;
  /** For the commit observer. */
  readonly tag: unknown;
  /** What the action returned (applied) or threw, once the batch's callback has run. */
  applied?: boolean;
  outcome?: unknown;
}

/** The writes of one transaction callback. */
interface Batch {
  /** Numbers batches in order; periodic mode records the latest committed one in the database. */
  readonly number: number;
  readonly writes: Write[];
  /** When its first write was called, for the commit observer. */
  readonly startedAt: number;
  /** Set once its callback has run: its writes' outcomes are known. */
  applied: boolean;
  /** Set once its writes are acknowledged (periodic mode: possibly before the sync). */
  acknowledged: boolean;
}

export class LmdbWriter {
  readonly #db: Db;
  readonly #intervalMs: number | undefined;
  readonly #observer: CommitObserver | undefined;
  /** The batch gathering writes: its transaction has not begun. */
  #open: Batch | undefined;
  /**
   * Sync mode: the gathering batch, when its transaction waits for the previous one to be synced
   * before it is queued. A transaction queued while another syncs would commit only the writes that
   * arrived so far and then wait for the disk anyway; queued after it, it carries every write that
   * arrived during that sync: fewer commits, and as many syncs as the disk allows.
   */
  #waiting: Batch | undefined;
  #lastNumber: number;
  /** Periodic mode: batches applied, waiting for their commit to be visible, in order. */
  #awaitingVisibility: Batch[] = [];
  /** Periodic mode: batches acknowledged before their sync, with when, in order. */
  #unsynced: { batch: Batch; acknowledgedAt: number }[] = [];
  /** Transactions not yet settled, so that `close` can wait for them. */
  readonly #inflight = new Set<Promise<unknown>>();
  #acknowledgedBeforeSync = 0;

  constructor(db: Db, durability: Durability, observer?: CommitObserver) {
    this.#db = db;
    this.#intervalMs = durability.mode === 'periodic' ? durability.intervalMs : undefined;
    this.#observer = observer;
    this.#lastNumber = decodeCount(db.get(MARKER_KEY));
    if (this.#intervalMs !== undefined) watchCommits(db, () => this.#checkVisibility());
  }

  /** Periodic mode: how many batches were acknowledged before their sync (the others waited for it). */
  get acknowledgedBeforeSync(): number {
    return this.#acknowledgedBeforeSync;
  }

  /**
   * Queues `action`, which reads and writes the database synchronously (`get`, `putSync`,
   * `removeSync`), into the gathering batch. Resolves to what it returned once acknowledged;
   * rejects with what it threw, or with a storage error when the commit failed.
   */
  write<T>(action: () => T, atomic: boolean): Promise<T> {
    const batch = this.#open ?? this.#openBatch();
    const tag = this.#observer?.queued();
    return new Promise<T>((resolve, reject) => {
      batch.writes.push({ action, atomic, resolve: resolve as (result: unknown) => void, reject, tag });
    });
  }

  /** Resolves once every write acknowledged so far is synced to disk (or its commit failed). */
  async synced(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  /** Waits for every queued transaction to settle. */
  async close(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled(this.#inflight);
  }

  /**
   * Opens the next batch. Its transaction is queued now, or, in sync mode while an earlier one has
   * not been synced yet, once it is: every write that arrives meanwhile joins it (see `#waiting`).
   */
  #openBatch(): Batch {
    const batch: Batch = { number: ++this.#lastNumber, writes: [], startedAt: performance.now(), applied: false, acknowledged: false };
    this.#open = batch;
    if (this.#intervalMs === undefined && this.#inflight.size > 0) this.#waiting = batch;
    else this.#queue(batch);
    return batch;
  }

  /** Queues the transaction of `batch`; the next batch waiting for it to settle goes next. */
  #queue(batch: Batch): void {
    let committed: Promise<unknown>;
    try {
      committed = this.#db.transaction(() => this.#apply(batch));
    } catch (err) {
      committed = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const settled = committed.then(
      () => this.#committed(batch),
      (err: unknown) => this.#failed(batch, err),
    );
    this.#inflight.add(settled);
    void settled.then(() => {
      this.#inflight.delete(settled);
      const waiting = this.#waiting;
      if (waiting !== undefined && this.#inflight.size === 0) {
        this.#waiting = undefined;
        this.#queue(waiting);
      }
    });
  }

  /** The batch's transaction callback: closes the batch and applies its writes in order. */
  #apply(batch: Batch): void {
    if (this.#open === batch) this.#open = undefined;
    const db = this.#db;
    for (const write of batch.writes) {
      try {
        write.outcome = write.atomic ? db.childTransaction(write.action) : write.action();
        write.applied = true;
      } catch (err) {
        write.outcome = err;
        write.applied = false;
      }
    }
    // Lets periodic mode tell, from a fresh read, which batches a visible commit holds.
    if (this.#intervalMs !== undefined) db.putSync(MARKER_KEY, encodeCount(batch.number));
    batch.applied = true;
    if (this.#intervalMs !== undefined) this.#awaitingVisibility.push(batch);
  }

  /** The batch's transaction is committed and synced. */
  #committed(batch: Batch): void {
    if (this.#awaitingVisibility[0] === batch) this.#awaitingVisibility.shift();
    if (this.#unsynced.length > 0) {
      let i = 0;
      while (i < this.#unsynced.length && this.#unsynced[i].batch.number <= batch.number) i++;
      this.#unsynced.splice(0, i);
    }
    if (!batch.acknowledged) this.#acknowledge(batch, false);
  }

  /** The batch's transaction failed: its writes fail with the cause (unless already acknowledged). */
  async #failed(batch: Batch, err: unknown): Promise<void> {
    const cause = await commitFailureCause(err);
    this.#awaitingVisibility = this.#awaitingVisibility.filter((b) => b !== batch);
    this.#unsynced = this.#unsynced.filter((u) => u.batch.number > batch.number);
    if (batch.acknowledged) return; // periodic mode: committed, then its sync failed; nothing to tell
    batch.acknowledged = true;
    const error = cause instanceof KvError ? cause : errors.storage(`cannot write: ${message(cause)}`, cause);
    for (const write of batch.writes) write.reject(error);
    this.#observer?.committed(batch.startedAt, performance.now(), batch.writes.map((w) => w.tag), true);
  }

  #acknowledge(batch: Batch, beforeSync: boolean): void {
    batch.acknowledged = true;
    if (beforeSync) {
      this.#unsynced.push({ batch, acknowledgedAt: performance.now() });
      this.#acknowledgedBeforeSync++;
    }
    let failed = false;
    for (const write of batch.writes) {
      if (write.applied) write.resolve(write.outcome);
      else {
        failed = true;
        write.reject(write.outcome instanceof KvError ? write.outcome : errors.storage(`cannot write: ${message(write.outcome)}`, write.outcome));
      }
    }
    this.#observer?.committed(batch.startedAt, performance.now(), batch.writes.map((w) => w.tag), failed);
  }

  /**
   * Periodic mode, told by lmdb-js that a commit became visible: the batches up to the one whose
   * number a fresh read finds are committed, and acknowledged now, unless an earlier
   * acknowledgement has waited for its sync for the whole interval.
   */
  #checkVisibility(): void {
    if (this.#awaitingVisibility.length === 0) return;
    let visible: number;
    try {
      this.#db.resetReadTxn();
      visible = decodeCount(this.#db.get(MARKER_KEY));
    } catch {
      return; // unreadable now: those batches are acknowledged once synced
    }
    const oldest = this.#unsynced[0];
    if (oldest !== undefined && performance.now() - oldest.acknowledgedAt >= this.#intervalMs!) return;
    let i = 0;
    for (; i < this.#awaitingVisibility.length && this.#awaitingVisibility[i].number <= visible; i++) {
      const batch = this.#awaitingVisibility[i];
      if (!batch.acknowledged) this.#acknowledge(batch, true);
    }
    this.#awaitingVisibility.splice(0, i);
  }
}

/**
 * Calls `visible` each time lmdb-js reports, on the main thread, that a commit has become visible
 * (its data and meta pages written, before the sync that follows). lmdb-js has no public event for
 * that moment, so this wraps the callback its write thread reports progress to (status 1: the
 * commit is visible); with a version that reports otherwise, `visible` is never called and writes
 * are acknowledged once synced, as in `sync` mode.
 */
function watchCommits(db: Db, visible: () => void): void {
  type StartWriting = (address: number, progress: (status: number) => unknown) => unknown;
  const env = (db as unknown as { env?: { startWriting?: StartWriting } }).env;
  const startWriting = env?.startWriting;
  if (env === undefined || typeof startWriting !== 'function') return;
  const wrapped = function (this: unknown, address: number, progress: (status: number) => unknown) {
    return startWriting.call(this, address, (status: number) => {
      const result = progress(status);
      if (status === 1) {
        try {
          visible();
        } catch {
          // Never into lmdb-js's native caller: those writes are acknowledged once synced.
        }
      }
      return result;
    });
  };
  // The native method is a read-only property of the prototype: an own property shadows it.
  Object.defineProperty(env, 'startWriting', { value: wrapped, writable: true, configurable: true });
}

/** Whether `err` is lmdb-js's report of a failed commit (which carries the cause in `commitError`). */
export function isCommitFailure(err: unknown): boolean {
  return err instanceof Error && (err as { commitError?: unknown }).commitError instanceof Promise;
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

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
