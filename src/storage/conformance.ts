/**
 * The conformance suite of the storage contract (`Store`): every store must pass it.
 *
 * It is built on `node:test`; call `storeConformance` from a test file once per store. Results
 * are always awaited, so stores answering synchronously and asynchronously are tested alike.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { EMPTY_VALUE, toValue, type KvValue } from '../protocol/values.js';
import { KvError } from '../errors.js';
import type { Entry, MaybePromise, Store } from './store.js';

export interface ConformanceOptions {
  /**
   * Closes `store` and opens a new one on the same data. Given for persistent stores: it enables
   * the cases that check data survives a restart.
   */
  reopen?: (store: Store) => Promise<Store> | Store;
}

/** One value of each type, with the edges where encodings go wrong. */
const SAMPLES: readonly [string, KvValue][] = [
  ['string', 'hello'],
  ['empty string', ''],
  ['unicode string', 'héllo, 世界 😀'],
  ['binary', Buffer.from([0, 1, 127, 128, 255])],
  ['empty binary', Buffer.alloc(0)],
  ['integer', 42n],
  ['integer zero', 0n],
  ['negative integer', -7n],
  ['integer above 2^53', (1n << 53n) + 1n],
  ['int64 minimum', -(1n << 63n)],
  ['int64 maximum', (1n << 63n) - 1n],
  ['float', 1.5],
  ['float zero', 0],
  ['negative zero', -0],
  ['float that is an integer', 3],
  ['NaN', NaN],
  ['infinity', -Infinity],
  ['true', true],
  ['false', false],
  ['empty value', null],
];

/**
 * Tables whose names are prefixes of each other, differ only in control characters, or are long and
 * hold NUL (a key encoding that escapes NUL only in short strings lets such tables overlap).
 */
const TABLES = ['a', 'ab', 'a b', '', 'a\0', 'a\0b', 'a\x01', 'b', 'x'.repeat(70), `${'x'.repeat(70)}\0y`];

const v = toValue;

/** Runs the conformance suite against the store that `open` creates (a new, empty one per test). */
export function storeConformance(
  name: string,
  open: () => Promise<Store> | Store,
  options: ConformanceOptions = {},
): void {
  describe(`${name}: storage contract`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await open();
    });

    afterEach(async () => {
      await store.close().catch(() => undefined);
    });

    test('a missing table reads as empty', async () => {
      assert.equal(await store.get('none', 'k'), undefined);
      assert.equal(await store.contains('none', 'k'), false);
      assert.deepEqual(await store.getAll('none'), []);
      assert.deepEqual(await collect(store.iterate('none')), []);
    });

    test('set returns undefined for a new key, then the previous value', async () => {
      assert.equal(await store.set('t', 'k', v('one')), undefined);
      assert.deepEqual(await store.get('t', 'k'), v('one'));
      assert.deepEqual(await store.set('t', 'k', v(2n)), v('one'));
      assert.deepEqual(await store.set('t', 'k', v(null)), v(2n));
      assert.deepEqual(await store.get('t', 'k'), EMPTY_VALUE);
    });

    test('every value type comes back with its type', async () => {
      for (const [label, js] of SAMPLES) {
        assert.equal(await store.set('types', label, v(js)), undefined, label);
        assert.deepEqual(await store.get('types', label), v(js), label);
      }
      assert.deepEqual(sorted(await store.getAll('types')), sorted(SAMPLES.map(([key, js]) => ({ key, value: v(js) }))));
      // The previous value a write returns keeps its type too.
      for (const [label, js] of SAMPLES) {
        assert.deepEqual(await store.set('types', label, v('replaced')), v(js), label);
      }
    });

    test('contains tells present from absent keys, the empty value included', async () => {
      await store.set('t', 'k', v(1n));
      await store.set('t', 'empty', v(null));
      assert.equal(await store.contains('t', 'k'), true);
      assert.equal(await store.contains('t', 'empty'), true);
      assert.equal(await store.contains('t', 'other'), false);
      await store.del('t', 'k');
      assert.equal(await store.contains('t', 'k'), false);
    });

    test('del returns the removed value, or undefined when absent', async () => {
      await store.set('t', 'k', v(Buffer.from('bytes')));
      await store.set('t', 'keep', v(true));
      assert.deepEqual(await store.del('t', 'k'), v(Buffer.from('bytes')));
      assert.equal(await store.get('t', 'k'), undefined);
      assert.equal(await store.del('t', 'k'), undefined);
      assert.equal(await store.del('none', 'k'), undefined);
      assert.deepEqual(await store.getAll('t'), [{ key: 'keep', value: v(true) }]);
      await store.del('t', 'keep');
      assert.deepEqual(await store.getAll('t'), []);
    });

    test('setMany returns the previous values in order', async () => {
      await store.set('t', 'b', v('old b'));
      const previous = await store.setMany('t', [
        { key: 'a', value: v(1n) },
        { key: 'b', value: v(2n) },
        { key: 'c', value: v(3.5) },
      ]);
      assert.deepEqual(previous, [undefined, v('old b'), undefined]);
      assert.deepEqual(sorted(await store.getAll('t')), [
        { key: 'a', value: v(1n) },
        { key: 'b', value: v(2n) },
        { key: 'c', value: v(3.5) },
      ]);
      assert.deepEqual(await store.setMany('t', []), []);
    });

    test('setMany naming a key twice keeps the last value; its second previous is the first', async () => {
      await store.set('t', 'k', v('before'));
      const previous = await store.setMany('t', [
        { key: 'k', value: v('first') },
        { key: 'n', value: v(1n) },
        { key: 'k', value: v('second') },
        { key: 'n', value: v(2n) },
      ]);
      assert.deepEqual(previous, [v('before'), undefined, v('first'), v(1n)]);
      assert.deepEqual(await store.get('t', 'k'), v('second'));
      assert.deepEqual(await store.get('t', 'n'), v(2n));
    });

    test('delMany returns the removed values in order', async () => {
      await store.setMany('t', [
        { key: 'a', value: v('A') },
        { key: 'b', value: v(Buffer.from([1])) },
        { key: 'keep', value: v(false) },
      ]);
      assert.deepEqual(await store.delMany('t', ['b', 'missing', 'a', 'b']), [v(Buffer.from([1])), undefined, v('A'), undefined]);
      assert.deepEqual(await store.getAll('t'), [{ key: 'keep', value: v(false) }]);
      assert.deepEqual(await store.delMany('none', ['x']), [undefined]);
      assert.deepEqual(await store.delMany('t', []), []);
    });

    test('tables are isolated, even when their names are prefixes of each other', async () => {
      for (const [i, table] of TABLES.entries()) {
        await store.setMany(table, [
          { key: '', value: v(BigInt(i)) },
          { key: 'k', value: v(`${i}`) },
          { key: `=${table}`, value: v(i) },
        ]);
      }
      for (const [i, table] of TABLES.entries()) {
        const expected = sorted([
          { key: '', value: v(BigInt(i)) },
          { key: 'k', value: v(`${i}`) },
          { key: `=${table}`, value: v(i) },
        ]);
        assert.deepEqual(sorted(await store.getAll(table)), expected, `table ${JSON.stringify(table)}`);
        assert.deepEqual(sorted(await collect(store.iterate(table))), expected, `table ${JSON.stringify(table)}`);
        assert.deepEqual(await store.get(table, 'k'), v(`${i}`));
      }
      await store.delMany('a', ['', 'k', '=a']);
      assert.deepEqual(await store.getAll('a'), []);
      assert.deepEqual(await store.get('ab', 'k'), v('1'));
      assert.deepEqual(await store.get('a\0', 'k'), v('4'));
    });

    test('the empty string is a valid table and a valid key', async () => {
      assert.equal(await store.set('', '', v('empty both')), undefined);
      await store.set('', 'k', v(1n));
      await store.set('t', '', v(2n));
      assert.deepEqual(await store.get('', ''), v('empty both'));
      assert.equal(await store.contains('', ''), true);
      assert.deepEqual(sorted(await store.getAll('')), [
        { key: '', value: v('empty both') },
        { key: 'k', value: v(1n) },
      ]);
      assert.deepEqual(await store.getAll('t'), [{ key: '', value: v(2n) }]);
      assert.deepEqual(await store.del('', ''), v('empty both'));
      assert.equal(await store.contains('', ''), false);
    });

    test('unicode and control characters in tables and keys round-trip', async () => {
      const keys = ['键', 'é', 'e\u0301', '😀🎉', '\0', '\x01', 'a\0b', 'tab\there', '\uffff', 'ключ'.repeat(50)];
      for (const [i, key] of keys.entries()) await store.set('表😀', key, v(BigInt(i)));
      const all = await store.getAll('表😀');
      assert.deepEqual(sorted(all), sorted(keys.map((key, i) => ({ key, value: v(BigInt(i)) }))));
      for (const [i, key] of keys.entries()) assert.deepEqual(await store.get('表😀', key), v(BigInt(i)), JSON.stringify(key));
    });

    test('iterate yields every entry once', async () => {
      const entries = Array.from({ length: 500 }, (_, i) => ({ key: `key-${i}`, value: v(BigInt(i)) }));
      await store.setMany('many', entries);
      await store.set('other', 'key-1', v('not in many'));
      assert.deepEqual(sorted(await collect(store.iterate('many'))), sorted(entries));
    });

    test('iterate can stop early, and the store stays usable', async () => {
      await store.setMany('t', Array.from({ length: 50 }, (_, i) => ({ key: `${i}`, value: v(BigInt(i)) })));
      let seen = 0;
      for await (const entry of store.iterate('t')) {
        assert.equal(entry.value.value?.$case, 'integer');
        if (++seen === 3) break;
      }
      assert.equal(seen, 3);
      assert.deepEqual(await store.set('t', 'new', v(true)), undefined);
      assert.equal((await store.getAll('t')).length, 51);
    });

    test('concurrent writes to one key are each atomic read-modify-writes', async () => {
      const n = 200;
      const previous = await Promise.all(Array.from({ length: n }, (_, i) => asPromise(store.set('t', 'k', v(BigInt(i))))));
      // Each write replaced exactly one other: the previous values and the final value are
      // together every value written, plus the undefined the first write found.
      const final = await store.get('t', 'k');
      const seen = [...previous, final].map((p) => (p === undefined ? 'new' : String(p.value?.value)));
      assert.deepEqual(seen.sort(), ['new', ...Array.from({ length: n }, (_, i) => String(i))].sort());
      const removed = await Promise.all(Array.from({ length: 10 }, () => asPromise(store.del('t', 'k'))));
      assert.equal(removed.filter((r) => r !== undefined).length, 1);
    });

    test('close waits for pending writes; every later call fails', async () => {
      const writes = Array.from({ length: 20 }, (_, i) => asPromise(store.set('t', `k${i}`, v(BigInt(i)))));
      await store.close();
      assert.equal((await Promise.all(writes)).length, 20);
      const closed = (err: unknown) => err instanceof KvError && err.code === 'STORAGE' && /closed/.test(err.message);
      const calls: [string, () => unknown][] = [
        ['get', () => store.get('t', 'k1')],
        ['set', () => store.set('t', 'k1', v(1n))],
        ['setMany', () => store.setMany('t', [{ key: 'k', value: v(1n) }])],
        ['contains', () => store.contains('t', 'k1')],
        ['del', () => store.del('t', 'k1')],
        ['delMany', () => store.delMany('t', ['k1'])],
        ['getAll', () => store.getAll('t')],
        ['iterate', () => collect(store.iterate('t'))],
      ];
      for (const [method, call] of calls) await assert.rejects(async () => await call(), closed, method);
    });

    const { reopen } = options;
    if (reopen === undefined) return;

    test('data survives reopening, with its types', async () => {
      await store.setMany('types', SAMPLES.map(([key, js]) => ({ key, value: v(js) })));
      for (const [i, table] of TABLES.entries()) await store.set(table, table, v(BigInt(i)));
      await store.set('gone', 'k', v('deleted later'));
      await store.del('gone', 'k');
      await store.delMany('types', ['false']);
      store = await reopen(store);
      const expected = SAMPLES.filter(([key]) => key !== 'false').map(([key, js]) => ({ key, value: v(js) }));
      assert.deepEqual(sorted(await store.getAll('types')), sorted(expected));
      for (const [key, js] of SAMPLES.slice(0, 3)) assert.deepEqual(await store.get('types', key), v(js));
      for (const [i, table] of TABLES.entries()) assert.deepEqual(await store.getAll(table), [{ key: table, value: v(BigInt(i)) }]);
      assert.deepEqual(await store.getAll('gone'), []);
      assert.equal(await store.contains('types', 'false'), false);
    });

    test('writes still pending at close survive reopening', async () => {
      const writes = Array.from({ length: 100 }, (_, i) => asPromise(store.set('t', `k${i}`, v(BigInt(i)))));
      store = await reopen(store);
      await Promise.all(writes);
      assert.equal((await store.getAll('t')).length, 100);
      assert.deepEqual(await store.get('t', 'k99'), v(99n));
    });
  });
}

/** A store result as a promise, whether the store answered now or later. */
function asPromise<T>(result: MaybePromise<T>): Promise<T> {
  return Promise.resolve(result);
}

/** Collects a sync or async iterable. */
async function collect(entries: Iterable<Entry> | AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const entry of entries) out.push(entry);
  return out;
}

/** Entries in key order, since stores hand them out in any order. */
function sorted(entries: readonly Entry[]): Entry[] {
  return [...entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}
