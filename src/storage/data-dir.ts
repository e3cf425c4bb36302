/**
 * The persistent store's data directory: what makes it protokv's, and the lock that keeps a second
 * server out of it.
 *
 * - A marker file, `protokv.json`, written when protokv creates the directory, says the directory
 *   is protokv's. A directory without it is accepted only when it is empty (or new), or when it
 *   holds nothing but an LMDB environment (`data.mdb`, `lock.mdb`) — what earlier protokv versions
 *   left, before the marker existed; the store then checks the environment's contents are
 *   protokv's before adopting it. Anything else (a Redis `dump.rdb`, another program's files) is
 *   refused before anything is written.
 * - LMDB lets any number of processes open one environment, so it would not stop a second server.
 *   The lock is a file, `protokv.lock`, created exclusively (`O_EXCL`) and holding the owner's pid,
 *   process start time and host. A lock whose process is gone (`kill -9`, power loss) is stale and
 *   taken over; the start time tells a live owner from an unrelated process that reused its pid.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { errors } from '../errors.js';

export const MARKER_FILE = 'protokv.json';
export const LOCK_FILE = 'protokv.lock';
/**
 * Entries that say nothing about whose a directory is: the lock, and the `lost+found` of a
 * filesystem's root (a data directory is often a mount point of its own).
 */
const IGNORED = new Set([LOCK_FILE, 'lost+found']);
/** The files of an LMDB environment, all an unmarked directory may hold to be adopted. */
const LMDB_FILES = new Set(['data.mdb', 'lock.mdb']);

/** What a data directory holds, as far as protokv can tell before opening anything. */
export type DataDirKind =
  /** Empty or just created. */
  | 'new'
  /** Marked as protokv's. */
  | 'marked'
  /** Only an LMDB environment, no marker: protokv's from before the marker, if its contents say so. */
  | 'unmarked-lmdb';

/**
 * Creates `dir` when missing and says what it holds; refuses (throws) a directory holding anything
 * that is not protokv's, without writing to it.
 */
export function inspectDataDir(dir: string): DataDirKind {
  let entries: string[];
  try {
    mkdirSync(dir, { recursive: true });
    entries = readdirSync(dir).filter((name) => !IGNORED.has(name));
  } catch (err) {
    throw errors.storage(`cannot use ${dir} as the store directory: ${(err as Error).message}`, err);
  }
  if (entries.includes(MARKER_FILE)) {
    readMarker(dir);
    return 'marked';
  }
  if (entries.length === 0) return 'new';
  if (entries.includes('data.mdb') && entries.every((name) => LMDB_FILES.has(name))) return 'unmarked-lmdb';
  const shown = entries.slice(0, 5).join(', ') + (entries.length > 5 ? `, … (${entries.length} entries)` : '');
  throw foreignDataDir(dir, `it holds ${shown} and no ${MARKER_FILE}`);
}

/** The refusal of a directory that is not protokv's. */
export function foreignDataDir(dir: string, why: string): Error {
  return errors.storage(
    `${dir} is not a protokv data directory (${why}); it was left untouched. Give --data-dir an empty or new directory`,
  );
}

/** Marks `dir` as protokv's (once its store is open and ours). */
export function writeMarker(dir: string): void {
  const marker = { protokv: 'data directory', format: 1, created: new Date().toISOString() };
  try {
    writeFileSync(join(dir, MARKER_FILE), `${JSON.stringify(marker, null, 2)}\n`, { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw errors.storage(`cannot write ${join(dir, MARKER_FILE)}: ${(err as Error).message}`, err);
  }
}

function readMarker(dir: string): void {
  const path = join(dir, MARKER_FILE);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw foreignDataDir(dir, `${MARKER_FILE} is not protokv's marker: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || !('protokv' in parsed)) {
    throw foreignDataDir(dir, `${MARKER_FILE} is not protokv's marker`);
  }
}

/** The locks this process holds, released when it exits. */
const held = new Set<DataDirLock>();
let exitHooked = false;

/** What a lock file says about its owner. */
interface LockOwner {
  pid: number;
  /** The owner's start time as the kernel counts it (Linux), to tell a reused pid apart. */
  started?: string;
  host: string;
}

/** An exclusive hold on a data directory; `release` when the store is closed. */
export class DataDirLock {
  /** The lock file's content, to release only a lock that is still ours. */
  readonly #owner: string;

  private constructor(
    readonly path: string,
    owner: string,
  ) {
    this.#owner = owner;
    held.add(this);
    if (held.size === 1 && !exitHooked) {
      // A process that exits without closing its store (lmdb-js may never finish closing after a
      // failed commit) still releases its locks; only a kill leaves one behind, and that is stale.
      process.on('exit', () => {
        for (const lock of held) lock.release();
      });
      exitHooked = true;
    }
  }

  /**
   * Takes the lock of `dir`, taking over a stale one; refuses when a live server holds it —
   * another process, or another store of this one.
   */
  static acquire(dir: string): DataDirLock {
    const path = join(dir, LOCK_FILE);
    const me: LockOwner = { pid: process.pid, started: processStart(process.pid), host: hostname() };
    const text = `${JSON.stringify(me)}\n`;
    for (let attempt = 0; attempt < 3; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, 'wx', 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw errors.storage(`cannot open the store in ${dir}: cannot create its lock file ${path}: ${(err as Error).message}`, err);
        }
        const owner = readOwner(path);
        if (owner === 'vanished') continue;
        if (owner !== 'unreadable' && !isAlive(owner)) {
          removeStale(path);
          continue;
        }
        const who = owner === 'unreadable' ? 'a server that is starting' : `pid ${owner.pid} on ${owner.host}`;
        throw errors.storage(
          `the data directory ${dir} is in use by another protokv server (${who}; lock file ${path}). ` +
            'Stop that server first; if it is gone for good, remove the lock file',
        );
      }
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
      return new DataDirLock(path, text);
    }
    throw errors.storage(`cannot open the store in ${dir}: its lock file ${path} keeps changing`);
  }

  /** Removes the lock file, if it is still this lock's. */
  release(): void {
    held.delete(this);
    try {
      if (readFileSync(this.path, 'utf8') === this.#owner) unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

function readOwner(path: string): LockOwner | 'vanished' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'vanished';
    return 'unreadable';
  }
  try {
    const owner = JSON.parse(text) as LockOwner;
    if (Number.isSafeInteger(owner.pid) && owner.pid > 0 && typeof owner.host === 'string') return owner;
  } catch {
    // Fall through.
  }
  // A lock file being written right now is briefly empty; an old unreadable one is stale.
  try {
    return Date.now() - statSync(path).mtimeMs < 10_000 ? 'unreadable' : { pid: 0, host: hostname() };
  } catch {
    return 'vanished';
  }
}

/** Whether the lock's owner still runs. A lock from another host is assumed live (its pids mean nothing here). */
function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  if (owner.pid <= 0) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false; // ESRCH: no such process
  }
  const started = processStart(owner.pid);
  // A zombie (killed, not yet reaped) is gone; a different start time is an unrelated process.
  if (started === 'zombie') return false;
  return owner.started === undefined || started === undefined || started === owner.started;
}

/**
 * The start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat), 'zombie'
 * for a process that has exited, undefined where /proc is not available.
 */
function processStart(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return 'zombie';
  return fields[19];
}

function removeStale(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw errors.storage(`cannot open the store in ${dirname(path)}: cannot remove the stale lock file ${path}: ${(err as Error).message}`, err);
    }
  }
}
