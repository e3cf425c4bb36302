import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { open } from 'lmdb';
import { KvError } from '../src/errors.js';
import { toValue as v } from '../src/protocol/values.js';
import { storeConformance } from '../src/storage/conformance.js';
import { LmdbStore, MAX_KEY_BYTES } from '../src/storage/lmdb.js';
import { MemoryStore } from '../src/storage/memory.js';
import type { Store } from '../src/storage/store.js';

let root: string;
let dirs = 0;
/** A new directory path inside the test's temp root (not created). */
const freshDir = () => join(root, `store-${++dirs}`);

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'protokv-storage-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

const storageError = (pattern: RegExp) => (err: unknown) =>
  err instanceof KvError && err.code === 'STORAGE' && pattern.test(err.message);

storeConformance('memory', () => new MemoryStore());

storeConformance('lmdb', () => LmdbStore.open(freshDir()), {
  reopen: async (store: Store) => {
    const { path } = store as LmdbStore;
    await store.close();
    return LmdbStore.open(path);
  },
});

// The other durability mode, and no read cache: the contract holds in every configuration.
const periodic = { durability: { mode: 'periodic', intervalMs: 1000 }, cacheBytes: 0 } as const;
storeConformance('lmdb, periodic durability, no cache', () => LmdbStore.open(freshDir(), periodic), {
  reopen: async (store: Store) => {
    const { path } = store as LmdbStore;
    await store.close();
    return LmdbStore.open(path, periodic);
  },
});

describe('lmdb store', () => {
  test('opening a missing directory creates it, even with a dot in its name', async () => {
    const dir = join(freshDir(), 'nested', 'data.v1');
    const store = LmdbStore.open(dir);
    await store.set('t', 'k', v(1n));
    await store.close();
    assert.ok((await stat(dir)).isDirectory());
    assert.ok((await stat(join(dir, 'data.mdb'))).isFile());
  });

  test('a directory holding a file that is not LMDB is refused and left untouched', async () => {
    const cases = {
      garbage: Buffer.alloc(20_000, 'not a database '),
      short: Buffer.from('tiny'),
      'zero page': Buffer.alloc(8192),
    };
    for (const [name, content] of Object.entries(cases)) {
      const dir = freshDir();
      await mkdir(dir);
      await writeFile(join(dir, 'data.mdb'), content);
      assert.throws(() => LmdbStore.open(dir), storageError(/not an LMDB environment/), name);
      assert.deepEqual(await readFile(join(dir, 'data.mdb')), content, name);
    }
  });

  test('a truncated environment is refused', async () => {
    const dir = freshDir();
    const store = LmdbStore.open(dir);
    await store.set('t', 'k', v('x'));
    await store.close();
    await truncate(join(dir, 'data.mdb'), 5000);
    assert.throws(() => LmdbStore.open(dir), storageError(/truncated/));
  });

  test('a path that is a file is refused', async () => {
    const file = join(root, `file-${++dirs}`);
    await writeFile(file, 'x');
    assert.throws(() => LmdbStore.open(file), storageError(/cannot use .* as the store directory/));
  });

  test('keys too long for LMDB are refused with the limit named; reads find them absent', async () => {
    const store = LmdbStore.open(freshDir());
    try {
      const longest = 'k'.repeat(MAX_KEY_BYTES - 2); // table "t" and a separator take 2 bytes
      await store.set('t', longest, v(1n));
      assert.deepEqual(store.get('t', longest), v(1n));
      const tooLong = `${longest}k`;
      const refused = storageError(new RegExp(`key too long.*${MAX_KEY_BYTES} bytes`));
      await assert.rejects(store.set('t', tooLong, v(1n)), refused);
      await assert.rejects(store.setMany('t', [{ key: 'fine', value: v(1n) }, { key: tooLong, value: v(2n) }]), refused);
      await assert.rejects(store.set('😀'.repeat(500), 'k', v(1n)), refused);
      assert.equal(store.contains('t', 'fine'), false, 'a refused setMany writes nothing');
      assert.equal(store.get('t', tooLong), undefined);
      assert.equal(store.contains('t', tooLong), false);
      assert.equal(await store.del('t', tooLong), undefined);
      assert.deepEqual(await store.delMany('t', [tooLong, longest]), [undefined, v(1n)]);
    } finally {
      await store.close();
    }
  });

  test('a setMany or delMany is seen whole or not at all', async () => {
    const store = LmdbStore.open(freshDir());
    try {
      const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
      for (let round = 0; round < 30; round++) {
        const write =
          round % 3 === 2
            ? store.delMany('t', keys)
            : store.setMany('t', keys.map((key) => ({ key, value: v(BigInt(round)) })));
        let settled = false;
        const settle = () => (settled = true);
        write.then(settle, settle);
        do {
          const entries = store.getAll('t');
          assert.ok(entries.length === 0 || entries.length === keys.length, `saw ${entries.length} keys`);
          assert.ok(new Set(entries.map((e) => e.value.value?.value)).size <= 1, 'saw two rounds at once');
          await nextTurn();
        } while (!settled);
        await write;
      }
    } finally {
      await store.close();
    }
  });

  test('dropping a large table: reads see it gone at once, later writes wait for the background deletion, the event loop keeps running', async () => {
    const store = LmdbStore.open(freshDir());
    try {
      const n = 35_000;
      for (let i = 0; i < n; i += 5000) {
        await store.setMany('big', Array.from({ length: 5000 }, (_, k) => ({ key: `k${i + k}`, value: v(BigInt(i + k)) })));
      }
      await store.set('other', 'k', v('kept'));
      let turns = 0;
      let spinning = true;
      const spin = (): void => {
        turns++;
        if (spinning) setImmediate(spin);
      };
      setImmediate(spin);
      const drop = store.drop('big');
      const after = store.set('big', 'new', v('after the drop'));
      assert.equal(store.len('big'), 1);
      assert.equal(store.get('big', 'k1'), undefined);
      assert.deepEqual(store.getAll('big'), [{ key: 'new', value: v('after the drop') }]);
      assert.equal(await drop, n);
      assert.equal(store.get('big', 'k2'), undefined, 'hidden until the background deletion is done');
      assert.equal(store.len('big'), 1);
      assert.deepEqual(store.scan('big', '', 10).items, [{ key: 'new', value: v('after the drop') }]);
      assert.deepEqual(store.tables('', 10).items, [
        { name: 'big', keys: 1 },
        { name: 'other', keys: 1 },
      ]);
      const turnsAtAck = turns;
      assert.equal(await after, undefined, 'the later write found the table empty');
      spinning = false;
      assert.ok(turns > turnsAtAck, 'the event loop ran while the old entries were deleted');
      assert.deepEqual(store.getAll('big'), [{ key: 'new', value: v('after the drop') }]);
      assert.equal(store.len('big'), 1);
      assert.deepEqual(store.get('other', 'k'), v('kept'));
    } finally {
      await store.close();
    }
  });

  test('a drop stopped by close is finished by the next open; writes waiting for it are refused, not lost later', async () => {
    const dir = freshDir();
    const store = LmdbStore.open(dir);
    for (let i = 0; i < 40_000; i += 5000) {
      await store.setMany('big', Array.from({ length: 5000 }, (_, k) => ({ key: `k${i + k}`, value: v(1n) })));
    }
    await store.set('other', 'k', v('kept'));
    assert.equal(await store.drop('big'), 40_000);
    const waiting = store.set('big', 'late', v('never acknowledged'));
    // Watched before close(): the refusal may come while close() runs.
    const refused = assert.rejects(waiting, storageError(/store closed before the drop of table "big" finished/));
    await store.close();
    await refused;
    const reopened = LmdbStore.open(dir);
    try {
      assert.equal(reopened.len('big'), 0);
      assert.deepEqual(reopened.getAll('big'), []);
      assert.deepEqual(reopened.tables('', 10).items, [{ name: 'other', keys: 1 }]);
      assert.deepEqual(reopened.get('other', 'k'), v('kept'));
    } finally {
      await reopened.close();
    }
    // Nothing of the drop is left in the database.
    const raw = open<Buffer, Buffer>(dir, { encoding: 'binary', keyEncoding: 'binary' });
    try {
      assert.deepEqual(Array.from(raw.getKeys({ start: Buffer.from('big\0'), end: Buffer.from('big\x01') })), []);
      assert.deepEqual(Array.from(raw.getKeys({ start: Buffer.from([0xff, 0x64]), end: Buffer.from([0xff, 0x65]) })), []);
    } finally {
      await raw.close();
    }
  });

  test('a setMany failing part-way writes nothing', async () => {
    const dir = freshDir();
    const store = LmdbStore.open(dir);
    await store.set('t', 'b', v('fine'));
    await store.close();
    // Corrupt the stored value of "b" behind the store's back (a length running past the end).
    const db = open<Buffer, Buffer>(dir, { encoding: 'binary', keyEncoding: 'binary' });
    await db.put(Buffer.from('t\0b'), Buffer.from([0x0a, 0x64]));
    await db.close();

    const reopened = LmdbStore.open(dir);
    try {
      const corrupt = storageError(/corrupt/);
      await assert.rejects(
        reopened.setMany('t', [
          { key: 'a', value: v(1n) },
          { key: 'b', value: v(2n) },
        ]),
        corrupt,
      );
      assert.equal(reopened.contains('t', 'a'), false);
      assert.throws(() => reopened.get('t', 'b'), corrupt);
      assert.throws(() => reopened.getAll('t'), corrupt);
      // Writes return the previous value, so they refuse a corrupt one rather than invent one.
      await assert.rejects(reopened.del('t', 'b'), corrupt);
    } finally {
      await reopened.close();
    }
  });
});
