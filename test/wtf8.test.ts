/**
 * Names holding lone surrogates (what the RESP listener makes of bytes that are not UTF-8) survive
 * the persistent store exactly: the WTF-8 codec, and the LMDB store across a reopen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bytesText, textBytes } from '../src/storage/wtf8.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { decodeName } from '../src/resp/names.js';
import { tempDir } from './helpers/stores.js';

test('any string round-trips; well-formed strings encode as plain UTF-8', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
      assert.equal(bytesText(textBytes(s)), s);
      if (s.isWellFormed()) assert.deepEqual(textBytes(s), Buffer.from(s, 'utf8'));
      assert.ok(!textBytes(s).includes(0xff));
    }),
    { numRuns: 3000 },
  );
  assert.equal(bytesText(Buffer.from('xx\ud83d\ude00', 'utf8'), 2), '\ud83d\ude00');
});

test('the LMDB store keeps names that are not UTF-8 over RESP, across a reopen', async () => {
  const tmp = await tempDir('protokv-wtf8-');
  const name = (bytes: number[]) => decodeName(Buffer.from(bytes), 0, bytes.length);
  const table = name([0x74, 0xff, 0xfe]);
  const otherTable = name([0x74, 0xef, 0xbf, 0xbd]); // "t" + U+FFFD, written as valid UTF-8
  const keys = [name([0x80]), name([0xed, 0xa0, 0x80]), name([0xc3]), 'plain'];
  const v = (s: string) => ({ value: { $case: 'string' as const, value: s } });
  try {
    let store = LmdbStore.open(tmp.dir);
    for (const [i, k] of keys.entries()) await store.set(table, k, v(String(i)));
    await store.set(otherTable, keys[0], v('other'));
    await store.close();
    store = LmdbStore.open(tmp.dir);
    for (const [i, k] of keys.entries()) assert.deepEqual(store.get(table, k), v(String(i)));
    assert.deepEqual(store.get(otherTable, keys[0]), v('other'));
    assert.deepEqual(new Set(Array.from(store.iterate(table), (e) => e.key)), new Set(keys));
    const page = store.scan(table, '', 2);
    const rest = store.scan(table, page.cursor, 10);
    assert.deepEqual(new Set([...page.items, ...rest.items].map((e) => e.key)), new Set(keys));
    const tables = store.tables('', 10);
    assert.deepEqual(new Set(tables.items.map((t) => t.name)), new Set([table, otherTable]));
    assert.equal(store.len(table), 4);
    assert.equal(await store.drop(table), 4);
    assert.equal(store.len(otherTable), 1);
    await store.close();
  } finally {
    await tmp.remove();
  }
});
