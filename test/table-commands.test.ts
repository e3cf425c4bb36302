/** HLEN, HSCAN, TABLES and HDROP (SPEC 1.5) over real sockets, on every store, bad inputs included. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvClient } from '../src/client/client.js';
import type { CommandRequest, CommandResponse } from '../src/protocol/generated/abi.js';
import { command, requests } from '../src/protocol/requests.js';
import { fromValue, type KvValue } from '../src/protocol/values.js';
import { startServer, type Running } from './helpers/server.js';
import { STORE_KINDS, type StoreFixture } from './helpers/stores.js';

for (const [kind, open] of Object.entries(STORE_KINDS)) {
  describe(`table commands on the ${kind} store`, () => {
    let fixture: StoreFixture;
    let running: Running;
    let kv: KvClient;
    before(async () => {
      fixture = await open();
      running = await startServer({ store: fixture.store });
      kv = await running.client();
    });
    after(async () => {
      await kv.close();
      await running.close();
      await fixture.cleanup();
    });

    const ok = async (req: CommandRequest): Promise<CommandResponse> => {
      const r = await kv.send(req);
      assert.equal(r.status, 200, r.message);
      return r;
    };
    const integer = async (req: CommandRequest): Promise<bigint> => {
      const r = await ok(req);
      assert.equal(r.values.length, 1);
      assert.equal(r.values[0]?.value?.$case, 'integer');
      assert.deepEqual(r.pairs, []);
      return fromValue(r.values[0]) as bigint;
    };
    /** A page: the next cursor (a string value) and the pairs. */
    const page = async (req: CommandRequest): Promise<{ cursor: string; pairs: [string, KvValue][] }> => {
      const r = await ok(req);
      assert.equal(r.values.length, 1);
      assert.equal(r.values[0]?.value?.$case, 'string', 'the cursor is a string value');
      return { cursor: fromValue(r.values[0]) as string, pairs: r.pairs.map((p) => [p.key, fromValue(p.value)]) };
    };
    const refused = async (req: CommandRequest, message: RegExp): Promise<void> => {
      const r = await kv.send(req);
      assert.equal(r.status, 400);
      assert.match(r.message, message);
      assert.deepEqual(r.values, []);
      assert.deepEqual(r.pairs, []);
    };
    const fill = async (table: string, n: number): Promise<void> => {
      for (let i = 0; i < n; i += 1000) {
        await ok(requests.hmset(table, Array.from({ length: Math.min(1000, n - i) }, (_, k) => [`k${i + k}`, BigInt(i + k)] as const)));
      }
    };

    test('HLEN answers an integer count, 0 for a missing table', async () => {
      assert.equal(await integer(requests.hlen('len')), 0n);
      await fill('len', 120);
      await ok(requests.hset('len', 'k0', 'overwritten'));
      assert.equal(await integer(requests.hlen('len')), 120n);
      await ok(requests.hmdel('len', ['k1', 'k2', 'missing']));
      assert.equal(await integer(requests.hlen('len')), 118n);
    });

    test('HSCAN pages through a table: count 0 means 100, the last cursor is ""', async () => {
      await fill('scan', 250);
      const first = await page(requests.hscan('scan', '', 0));
      assert.equal(first.pairs.length, 100);
      assert.notEqual(first.cursor, '');
      const seen = new Map(first.pairs);
      let cursor = first.cursor;
      let pages = 1;
      while (cursor !== '') {
        const p = await page(requests.hscan('scan', cursor));
        assert.ok(p.pairs.length <= 100);
        for (const [k, v] of p.pairs) seen.set(k, v);
        cursor = p.cursor;
        assert.ok(++pages <= 4);
      }
      assert.equal(seen.size, 250);
      for (let i = 0; i < 250; i++) assert.equal(seen.get(`k${i}`), BigInt(i));
      assert.deepEqual(await page(requests.hscan('missing')), { cursor: '', pairs: [] });
    });

    test('HSCAN with count 1 and count 10,000 both see every key once', async () => {
      await fill('one', 30);
      for (const count of [1, 10_000]) {
        const keys: string[] = [];
        let cursor = '';
        do {
          const p = await page(requests.hscan('one', cursor, count));
          assert.ok(p.pairs.length <= count);
          keys.push(...p.pairs.map(([k]) => k));
          cursor = p.cursor;
        } while (cursor !== '');
        assert.deepEqual(keys.sort(), Array.from({ length: 30 }, (_, i) => `k${i}`).sort(), `count ${count}`);
      }
    });

    test('HSCAN and TABLES refuse a count over 10,000 and malformed cursors with 400; the connection stays usable', async () => {
      await refused(requests.hscan('one', '', 10_001), /count 10001 exceeds the maximum of 10000/);
      await refused(requests.hscan('one', '', 0xffff_ffff), /count 4294967295 exceeds the maximum of 10000/);
      await refused(requests.tables('', 10_001), /count 10001 exceeds the maximum of 10000/);
      for (const cursor of ['!', 'not a cursor', '%%%']) {
        await refused(requests.hscan('one', cursor), /malformed cursor/);
        await refused(requests.tables(cursor), /malformed cursor/);
      }
      assert.equal(await integer(requests.hlen('one')), 30n);
    });

    test('TABLES lists non-empty tables with integer counts, paged', async () => {
      const names = ['tb-a', 'tb-b', '', 'tb-\0', '表'];
      for (const [i, name] of names.entries()) {
        await ok(requests.hmset(name, Array.from({ length: i + 1 }, (_, k) => [`${k}`, 'x'] as const)));
      }
      await ok(requests.hset('tb-emptied', 'k', 1n));
      await ok(requests.hdel('tb-emptied', 'k'));
      const listed = new Map<string, KvValue>();
      let cursor = '';
      do {
        const r = await ok(requests.tables(cursor, 2));
        assert.ok(r.pairs.length <= 2);
        for (const p of r.pairs) {
          assert.equal(p.value?.value?.$case, 'integer');
          listed.set(p.key, fromValue(p.value));
        }
        cursor = fromValue(r.values[0]) as string;
      } while (cursor !== '');
      for (const [i, name] of names.entries()) assert.equal(listed.get(name), BigInt(i + 1), JSON.stringify(name));
      assert.equal(listed.has('tb-emptied'), false);
      for (const [name, n] of listed) assert.equal(await integer(requests.hlen(name)), n);
      const first = await page(requests.tables());
      assert.ok(first.pairs.length <= 100);
    });

    test('HDROP removes the table and answers how many keys it had', async () => {
      await fill('drop', 1500);
      await ok(requests.hset('drop2', 'k', 'stays'));
      assert.equal(await integer(requests.hdrop('drop')), 1500n);
      assert.equal(await integer(requests.hlen('drop')), 0n);
      assert.deepEqual((await ok(requests.hgetall('drop'))).pairs, []);
      assert.equal((await kv.send(requests.hget('drop', 'k1'))).status, 404);
      assert.equal(await integer(requests.hdrop('drop')), 0n);
      assert.equal(await integer(requests.hdrop('never')), 0n);
      assert.deepEqual(await page(requests.hscan('drop2')), { cursor: '', pairs: [['k', 'stays']] });
      const tables = await page(requests.tables('', 10_000));
      assert.ok(!tables.pairs.some(([name]) => name === 'drop'));
    });

    test('the empty string is a valid table for every table command', async () => {
      await ok(requests.hdrop(''));
      await ok(requests.hset('', '', 'x'));
      assert.equal(await integer(requests.hlen('')), 1n);
      assert.deepEqual(await page(requests.hscan('')), { cursor: '', pairs: [['', 'x']] });
      assert.equal(await integer(requests.hdrop('')), 1n);
    });

    test('sub-messages with every field left out take the defaults', async () => {
      // An Hscan with nothing set: table "", cursor "", count 0 (100).
      assert.equal((await kv.send(command('hscan', { table: '', cursor: '', count: 0 }))).status, 200);
      assert.equal((await kv.send(command('tables', { cursor: '', count: 0 }))).status, 200);
    });
  });
}
