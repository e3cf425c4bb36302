/**
 * Data directory safety (SPEC 4): a directory holding anything that is not protokv's is refused,
 * untouched; a directory in use by another server is refused (lock); protokv's own directories,
 * from this version or an earlier one, open.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { KvError } from '../src/errors.js';
import { Value } from '../src/protocol/generated/abi.js';
import { toValue as v } from '../src/protocol/values.js';
import { LOCK_FILE, MARKER_FILE } from '../src/storage/data-dir.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { runCli, startServerProcess } from './helpers/cli.js';
import { until } from './helpers/wait.js';

let root: string;
let dirs = 0;
const freshDir = () => join(root, `dir-${++dirs}`);

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'protokv-data-dir-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * Every file of `dir` with its bytes, to show a refused directory was left untouched. The content
 * of an LMDB lock file is left out: it is LMDB's shared reader table, which every reader (the
 * check of an environment's contents included) registers in; the data file is compared whole.
 */
async function snapshot(dir: string): Promise<Map<string, Buffer | 'exists'>> {
  const out = new Map<string, Buffer | 'exists'>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) {
      const path = join(entry.parentPath, entry.name);
      out.set(path.slice(dir.length), entry.name === 'lock.mdb' ? 'exists' : await readFile(path));
    }
  }
  return out;
}

const refused = (pattern: RegExp) => (err: unknown) => err instanceof KvError && err.code === 'STORAGE' && pattern.test(err.message);

/** Asserts that opening `dir` is refused with a message naming it and matching `pattern`, and changes nothing. */
async function assertRefusedUntouched(dir: string, pattern: RegExp): Promise<void> {
  const before = await snapshot(dir);
  assert.throws(() => LmdbStore.open(dir), refused(pattern));
  assert.throws(() => LmdbStore.open(dir), (err: unknown) => err instanceof Error && err.message.includes(dir));
  assert.deepEqual(await snapshot(dir), before, 'the directory is untouched');
}

const encodeValue = (value: Value) => Buffer.from(Value.encode(value).finish());

describe('what a data directory may hold', () => {
  test('a new or empty directory is created, marked and locked; the lock goes with close', async () => {
    const existing = freshDir();
    await mkdir(existing);
    for (const dir of [join(freshDir(), 'nested', 'data.v1'), existing]) {
      const store = LmdbStore.open(dir);
      await store.set('t', 'k', v(1n));
      assert.ok(existsSync(join(dir, MARKER_FILE)));
      assert.equal((JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
      await store.close();
      assert.ok(!existsSync(join(dir, LOCK_FILE)), 'the lock is released');
      const again = LmdbStore.open(dir);
      assert.deepEqual(again.get('t', 'k'), v(1n));
      await again.close();
    }
  });

  test('the root of a filesystem (holding only lost+found) counts as empty', async () => {
    const dir = freshDir();
    await mkdir(join(dir, 'lost+found'), { recursive: true });
    const store = LmdbStore.open(dir);
    await store.close();
    assert.ok(existsSync(join(dir, MARKER_FILE)));
  });

  test("a Redis data directory is refused, untouched", async () => {
    const dir = freshDir();
    await mkdir(dir);
    const redis = spawnSync('redis-server', ['--version']);
    if (redis.status === 0) {
      // A real dump.rdb, written by redis-server itself (no TCP port: a unix socket in the test dir).
      const socket = join(root, `redis-${dirs}.sock`);
      const server = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      try {
        await until(() => existsSync(socket), 'redis-server to start', 20_000);
        execFileSync('redis-cli', ['-s', socket, 'HSET', 'users', 'ada', 'Lovelace']);
        execFileSync('redis-cli', ['-s', socket, 'SAVE']);
      } finally {
        server.kill('SIGKILL');
      }
      await until(() => existsSync(join(dir, 'dump.rdb')), 'dump.rdb', 20_000);
    } else {
      await writeFile(join(dir, 'dump.rdb'), Buffer.from('REDIS0011\xfa\x09redis-ver', 'latin1'));
    }
    await assertRefusedUntouched(dir, /is not a protokv data directory \(it holds dump\.rdb and no protokv\.json\); it was left untouched/);
  });

  test('a directory holding other files is refused, untouched, naming what it found', async () => {
    const dir = freshDir();
    await mkdir(join(dir, 'photos'), { recursive: true });
    await writeFile(join(dir, 'notes.txt'), 'mine');
    await writeFile(join(dir, 'photos', 'cat.jpg'), 'meow');
    await assertRefusedUntouched(dir, /it holds (notes\.txt, photos|photos, notes\.txt) and no protokv\.json/);
    // Even next to an LMDB environment.
    const mixed = freshDir();
    const store = LmdbStore.open(mixed);
    await store.close();
    await rm(join(mixed, MARKER_FILE));
    await writeFile(join(mixed, 'extra.db'), 'x');
    await assertRefusedUntouched(mixed, /it holds .*extra\.db/);
  });

  test("another program's LMDB environment is refused, untouched", async () => {
    // Written by lmdb-js with its defaults (msgpack values, string keys), as another program would.
    const dir = freshDir();
    const other = open(dir, {});
    await other.put('user:1', { name: 'Ada', born: 1815 });
    await other.put('user:2', { name: 'Grace' });
    await other.close();
    await assertRefusedUntouched(dir, /it holds an LMDB environment with a key 0x.* that is not a protokv table and key/);

    // Keys that look like protokv's, values that do not.
    const lookalike = freshDir();
    const db = open<Buffer, Buffer>(lookalike, { encoding: 'binary', keyEncoding: 'binary' });
    await db.put(Buffer.from('t\0k'), Buffer.from([0x0a, 0x64]));
    await db.close();
    await assertRefusedUntouched(lookalike, /a value under .* that is not a protokv value/);

    // With named databases (their names are keys of the main database).
    const named = freshDir();
    const env = open(named, {});
    await env.openDB({ name: 'sessions' }).put('s1', 'x');
    await env.close();
    await assertRefusedUntouched(named, /not a protokv data directory/);
  });

  test("another program's LMDB data file alone is refused, and LMDB's lock file is not left behind", async () => {
    const source = freshDir();
    const other = open(source, {});
    await other.put('key', 'value');
    await other.close();
    const dir = freshDir();
    await mkdir(dir);
    await writeFile(join(dir, 'data.mdb'), await readFile(join(source, 'data.mdb')));
    await assertRefusedUntouched(dir, /not a protokv table and key/);
    assert.deepEqual(await readdir(dir), ['data.mdb']);
  });

  test('a data directory of an earlier protokv (no marker, no key counts) opens, with its counts computed', async () => {
    const dir = freshDir();
    // As earlier versions wrote it: entries only, `table 0x00 key` → protobuf Value.
    const db = open<Buffer, Buffer>(dir, { encoding: 'binary', keyEncoding: 'binary' });
    for (let i = 0; i < 250; i++) await db.put(Buffer.from(`users\0u${i}`), encodeValue(v(BigInt(i))));
    await db.put(Buffer.from('\x01\x01odd\0k'), encodeValue(v('table "\\0odd"')));
    await db.put(Buffer.from('\0'), encodeValue(v(null)));
    await db.close();
    const store = LmdbStore.open(dir);
    try {
      assert.ok(existsSync(join(dir, MARKER_FILE)), 'adopted: marked as protokv\'s');
      assert.equal(store.len('users'), 250);
      assert.equal(store.len('\0odd'), 1);
      assert.equal(store.len(''), 1);
      assert.deepEqual(store.get('users', 'u7'), v(7n));
      const tables = store.tables('', 10).items;
      assert.deepEqual(new Map(tables.map((t) => [t.name, t.keys])), new Map([['', 1], ['\0odd', 1], ['users', 250]]));
      await store.set('users', 'new', v(true));
      assert.equal(store.len('users'), 251);
    } finally {
      await store.close();
    }
    const reopened = LmdbStore.open(dir);
    assert.equal(reopened.len('users'), 251);
    await reopened.close();
  });

  test('a marker file that is not protokv\'s is refused', async () => {
    const dir = freshDir();
    await mkdir(dir);
    await writeFile(join(dir, MARKER_FILE), '{"app": "something else"}');
    await assertRefusedUntouched(dir, /protokv\.json is not protokv's marker/);
    await writeFile(join(dir, MARKER_FILE), 'not json');
    await assertRefusedUntouched(dir, /protokv\.json is not protokv's marker/);
  });
});

describe('one server per data directory', () => {
  test('a second store on a directory in use is refused, naming it; after close it opens', async () => {
    const dir = freshDir();
    const first = LmdbStore.open(dir);
    await first.set('t', 'k', v('first'));
    assert.throws(() => LmdbStore.open(dir), refused(new RegExp(`the data directory ${dir} is in use by another protokv server \\(pid ${process.pid} on`)));
    assert.deepEqual(first.get('t', 'k'), v('first'), 'the first store is unaffected');
    await first.set('t', 'k2', v('still writable'));
    await first.close();
    const second = LmdbStore.open(dir);
    assert.deepEqual(second.get('t', 'k2'), v('still writable'));
    await second.close();
  });

  test('a stale lock (its process is gone, or its pid now belongs to another process) is taken over', async () => {
    const dir = freshDir();
    (await LmdbStore.open(dir).close());
    const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(exited.stdout);
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: deadPid, started: '1', host: hostname() }));
    const store = LmdbStore.open(dir);
    await store.close();
    // This process's pid, but another start time: a previous owner whose pid was reused.
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, started: '1', host: hostname() }));
    const reused = LmdbStore.open(dir);
    await reused.close();
  });

  test('a lock held from another host is respected', async () => {
    const dir = freshDir();
    (await LmdbStore.open(dir).close());
    await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere.example' }));
    assert.throws(() => LmdbStore.open(dir), refused(/in use by another protokv server \(pid 1 on elsewhere\.example; lock file/));
  });

  test('two real servers on one directory: the second is refused and the first keeps serving; after it stops, or is killed, another starts', { timeout: 120_000 }, async () => {
    const dir = freshDir();
    const first = await startServerProcess(['--data-dir', dir, '--listen', '127.0.0.1:0']);
    try {
      assert.equal((await runCli(['hset', 't', 'k', 'v1', '--server', first.address])).code, 0);
      const second = await runCli(['serve', '--data-dir', dir, '--listen', '127.0.0.1:0']);
      assert.equal(second.code, 1);
      assert.match(second.stdout + second.stderr, new RegExp(`the data directory ${dir} is in use by another protokv server \\(pid ${first.child.pid} on`));
      assert.equal(first.child.exitCode, null, 'the first server still runs');
      const got = await runCli(['hget', 't', 'k', '--server', first.address]);
      assert.match(got.stdout, /v1/);
      assert.equal((await runCli(['hset', 't', 'k2', 'v2', '--server', first.address])).code, 0);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    assert.ok(!existsSync(join(dir, LOCK_FILE)), 'a graceful stop releases the lock');
    const third = await startServerProcess(['--data-dir', dir, '--listen', '127.0.0.1:0']);
    assert.match((await runCli(['hget', 't', 'k2', '--server', third.address])).stdout, /v2/);
    await third.stop('SIGKILL');
    assert.ok(existsSync(join(dir, LOCK_FILE)), 'kill -9 leaves the lock file behind');
    const fourth = await startServerProcess(['--data-dir', dir, '--listen', '127.0.0.1:0']);
    try {
      assert.match((await runCli(['hget', 't', 'k', '--server', fourth.address])).stdout, /v1/);
    } finally {
      assert.equal(await fourth.stop(), 0);
    }
  });
});
