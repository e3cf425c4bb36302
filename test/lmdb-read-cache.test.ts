/**
 * The persistent store's read cache: bounded in bytes, second chance for entries read since
 * eviction last passed them, forgetting keys and whole tables; and, through the store, reads that
 * stay right across writes, deletes, drops and reopening.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadCache } from '../src/storage/lmdb-read-cache.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { toValue as v } from '../src/protocol/values.js';
import { tempDir } from './helpers/stores.js';

const value = v('x'.repeat(32));

test('the cache stays within its budget and keeps what it can', () => {
  const cache = new ReadCache(64 * 1024);
  for (let i = 0; i < 10_000; i++) cache.set('t', `key${i}`, value, 34);
  assert.ok(cache.bytes <= 64 * 1024, `${cache.bytes} bytes cached`);
  assert.ok(cache.bytes > 48 * 1024, `the budget is used: ${cache.bytes} bytes`);
  assert.equal(cache.get('t', 'key0'), undefined, 'the oldest entries went first');
  assert.equal(cache.get('t', 'key9999'), value, 'the newest entries are kept');
});

test('an entry read since eviction last passed it gets a second chance', () => {
  const cache = new ReadCache(10 * 1024);
  cache.set('t', 'hot', value, 34);
  for (let i = 0; i < 1000; i++) {
    assert.equal(cache.get('t', 'hot'), value, `still cached after ${i} other entries`);
    cache.set('t', `cold${i}`, value, 34);
  }
  assert.equal(cache.get('t', 'cold0'), undefined);
});

test('deleting keys and tables frees their bytes; an entry too large for the budget is not kept', () => {
  const cache = new ReadCache(1024 * 1024);
  for (let i = 0; i < 100; i++) {
    cache.set('a', `k${i}`, value, 34);
    cache.set('b', `k${i}`, value, 34);
  }
  const full = cache.bytes;
  cache.delete('a', 'k0');
  assert.equal(cache.get('a', 'k0'), undefined);
  assert.ok(cache.bytes < full);
  cache.deleteTable('b');
  assert.equal(cache.get('b', 'k1'), undefined);
  assert.equal(cache.get('a', 'k1'), value);
  const same = new ReadCache(1024 * 1024);
  for (let i = 1; i < 100; i++) same.set('a', `k${i}`, value, 34);
  assert.equal(cache.bytes, same.bytes, 'what is left is counted exactly');
  cache.set('a', 'k1', v('changed'), 9);
  assert.deepEqual(cache.get('a', 'k1'), v('changed'));

  cache.set('a', 'huge', value, 2 * 1024 * 1024);
  assert.equal(cache.get('a', 'huge'), undefined);
  // Many deletes without any eviction still leave the cache empty and usable.
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 500; i++) cache.set('c', `r${i}`, value, 34);
    for (let i = 0; i < 500; i++) cache.delete('c', `r${i}`);
  }
  cache.deleteTable('a');
  assert.equal(cache.bytes, 0);
  new ReadCache(0).set('t', 'k', value, 1);
  assert.equal(new ReadCache(0).enabled, false);
});

test('through the store, cached reads follow writes, deletes, drops and reopening', async () => {
  const tmp = await tempDir('protokv-cache-');
  let store = LmdbStore.open(tmp.dir, { cacheBytes: 1024 * 1024 });
  try {
    await store.set('t', 'k', v('one'));
    assert.deepEqual(store.get('t', 'k'), v('one'));
    assert.deepEqual(store.get('t', 'k'), v('one'), 'cached');
    const pending = store.set('t', 'k', v('two'));
    assert.deepEqual(store.get('t', 'k'), v('two'), 'a pending write is read, not the cached value');
    await pending;
    assert.deepEqual(store.get('t', 'k'), v('two'));
    assert.equal(store.contains('t', 'k'), true);
    await store.del('t', 'k');
    assert.equal(store.get('t', 'k'), undefined);
    assert.equal(store.contains('t', 'k'), false);
    await store.setMany('t', [{ key: 'a', value: v(1n) }, { key: 'b', value: v(2n) }]);
    assert.deepEqual(store.get('t', 'a'), v(1n));
    await store.drop('t');
    assert.equal(store.get('t', 'a'), undefined, 'a dropped table is not read from the cache');
    await store.set('t', 'a', v(3n));
    assert.deepEqual(store.get('t', 'a'), v(3n));
    await store.close();
    store = LmdbStore.open(tmp.dir, { cacheBytes: 0 });
    assert.deepEqual(store.get('t', 'a'), v(3n));
    assert.equal(store.get('t', 'b'), undefined);
  } finally {
    await store.close();
    await tmp.remove();
  }
});
