/**
 * How the persistent store turns writes into transactions: batches of writes share a transaction,
 * applied in call order; one write that fails leaves the others of its batch alone; string values
 * are stored with exactly the bytes of the generated encoder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open } from 'lmdb';
import { Value } from '../src/protocol/generated/abi.js';
import { toValue as v } from '../src/protocol/values.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { tempDir } from './helpers/stores.js';

/** Opens a store in a fresh directory, runs `body`, closes it and removes the directory. */
async function withStore(body: (store: LmdbStore, dir: string) => Promise<void>, options = {}): Promise<void> {
  const tmp = await tempDir('protokv-writer-');
  const store = LmdbStore.open(tmp.dir, options);
  try {
    await body(store, tmp.dir);
  } finally {
    await store.close();
    await tmp.remove();
  }
}

test('concurrent writes of one key are applied in call order, each answering the one before', async () => {
  let commits = 0;
  const observer = { queued: () => undefined, committed: () => void commits++ };
  await withStore(
    async (store) => {
      const previous = await Promise.all(Array.from({ length: 1000 }, (_, i) => store.set('t', 'k', v(BigInt(i)))));
      assert.deepEqual(previous, [undefined, ...Array.from({ length: 999 }, (_, i) => v(BigInt(i)))]);
      assert.deepEqual(store.get('t', 'k'), v(999n));
      assert.equal(store.len('t'), 1);
      assert.ok(commits < 100, `1000 writes called together share transactions: ${commits} commits`);
    },
    { commitObserver: observer },
  );
});

test('a write that fails in its transaction fails alone; the others of its batch are applied', async () => {
  await withStore(async (store, dir) => {
    await store.set('t', 'corrupt', v('soon corrupt'));
    await store.set('t', 'fine', v(1n));
    // Another handle on the same environment stores bytes that do not decode as a value.
    const raw = open<Buffer, Buffer>(dir, { encoding: 'binary', keyEncoding: 'binary', noSubdir: false });
    await raw.put(Buffer.from('t\0corrupt'), Buffer.from([0xff, 0xff, 0xff]));
    store.get('t', 'fine'); // a read after the raw write: lmdb-js renews its snapshot

    const results = await Promise.allSettled([
      store.set('t', 'fine', v(2n)),
      store.set('t', 'corrupt', v('replaced')),
      store.setMany('t', [
        { key: 'new', value: v(3n) },
        { key: 'corrupt', value: v('replaced') },
      ]),
      store.set('t', 'other', v(4n)),
    ]);
    assert.deepEqual(results[0], { status: 'fulfilled', value: v(1n) });
    assert.equal(results[1].status, 'rejected');
    assert.match(String((results[1] as PromiseRejectedResult).reason), /Storage error: a stored value is corrupt/);
    assert.equal(results[2].status, 'rejected', 'an atomic write that fails part-way');
    assert.deepEqual(results[3], { status: 'fulfilled', value: undefined });
    assert.deepEqual(store.get('t', 'fine'), v(2n));
    assert.deepEqual(store.get('t', 'other'), v(4n));
    assert.equal(store.get('t', 'new'), undefined, 'rolled back whole');
    assert.equal(store.len('t'), 3, 'counts follow what was applied: corrupt, fine, other');
    await raw.close();
  });
});

test('string values are stored with the bytes the generated encoder writes', async () => {
  const texts = ['', 'a', 'héllo, 世界 😀', 'x'.repeat(127), 'x'.repeat(128), 'é'.repeat(64), 'x'.repeat(16383), 'x'.repeat(16384), 'y'.repeat(70_000)];
  const tmp = await tempDir('protokv-writer-');
  try {
    const store = LmdbStore.open(tmp.dir);
    await Promise.all(texts.map((text, i) => store.set('t', `k${i}`, v(text))));
    await store.close();
    const raw = open<Buffer, Buffer>(tmp.dir, { encoding: 'binary', keyEncoding: 'binary', noSubdir: false, readOnly: true });
    for (const [i, text] of texts.entries()) {
      const expected = Buffer.from(Value.encode(v(text)).finish());
      assert.deepEqual(raw.get(Buffer.from(`t\0k${i}`)), expected, `${text.length} characters`);
    }
    await raw.close();
  } finally {
    await tmp.remove();
  }
});
