/** Every row of SPEC 1.5, run in-process through the Service against every store. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { CommandRequest, CommandResponse } from '../src/protocol/generated/abi.js';
import { command, requests } from '../src/protocol/requests.js';
import { fromValue, pairsToMap, type KvValue } from '../src/protocol/values.js';
import { Service } from '../src/service/service.js';
import { STORE_KINDS, type StoreFixture } from './helpers/stores.js';

for (const [kind, open] of Object.entries(STORE_KINDS)) {
  describe(`commands on the ${kind} store`, () => {
    let fixture: StoreFixture;
    let service: Service;
    before(async () => {
      fixture = await open();
      service = new Service({ store: fixture.store, maxKeysPerCommand: 50 });
    });
    after(async () => {
      await service.close();
      await fixture.cleanup();
    });

    const run = async (req: CommandRequest): Promise<CommandResponse> => service.execute(req);
    const values = async (req: CommandRequest): Promise<KvValue[]> => {
      const r = await run(req);
      assert.equal(r.status, 200, r.message);
      assert.equal(r.pairs.length, 0);
      return r.values.map(fromValue);
    };
    const expectError = async (req: CommandRequest, status: number, message: RegExp | string): Promise<void> => {
      const r = await run(req);
      assert.equal(r.status, status);
      if (typeof message === 'string') assert.equal(r.message, message);
      else assert.match(r.message, message);
      assert.deepEqual(r.values, []);
      assert.deepEqual(r.pairs, []);
    };

    test('HSET of a new key answers [empty value]; HSET again answers the previous value', async () => {
      assert.deepEqual(await values(requests.hset('t1', 'k', 'v1')), [null]);
      const r = await run(requests.hset('t1', 'k', 'v2'));
      assert.equal(r.values[0]?.value?.$case, 'string');
      assert.deepEqual(r.values.map(fromValue), ['v1']);
      assert.deepEqual(await values(requests.hget('t1', 'k')), ['v2']);
    });

    test('HSET without a pair is a 400', async () => {
      await expectError(command('hset', { table: 't', pair: undefined }), 400, /HSET needs a pair/);
    });

    test('HSET of a pair with no value stores the empty value', async () => {
      await values(command('hset', { table: 'tnv', pair: { key: 'k', value: undefined } }));
      const r = await run(requests.hget('tnv', 'k'));
      assert.equal(r.status, 200);
      assert.equal(r.values.length, 1);
      assert.equal(r.values[0]?.value, undefined);
      assert.deepEqual(await values(requests.hexist('tnv', 'k')), [true]);
    });

    test('HGET of a missing key is a 404 naming table and key', async () => {
      await expectError(requests.hget('nosuch', 'k'), 404, 'Not found: table nosuch, key k');
      await values(requests.hset('t2', 'a', 1n));
      await expectError(requests.hget('t2', 'b'), 404, 'Not found: table t2, key b');
    });

    test('every value type keeps its type, int64 extremes included', async () => {
      const cases: KvValue[] = ['s', '', Buffer.from([0, 1, 255]), 0n, -(1n << 63n), (1n << 63n) - 1n, 2.5, 1, -0.0, true, false, null];
      for (const [i, v] of cases.entries()) {
        await values(requests.hset('types', `k${i}`, v));
        assert.deepEqual(await values(requests.hget('types', `k${i}`)), [v], `case ${i}`);
      }
      const r = await run(requests.hget('types', 'k7'));
      assert.equal(r.values[0]?.value?.$case, 'float', '1 (a number) is a float');
      const i = await run(requests.hget('types', 'k3'));
      assert.equal(i.values[0]?.value?.$case, 'integer', '0n is an integer');
    });

    test('HGETALL answers every pair of the table and nothing of others', async () => {
      await values(requests.hmset('all', { a: 'x', b: 2n, c: true }));
      await values(requests.hset('all2', 'z', 'other'));
      await values(requests.hset('al', 'y', 'prefix'));
      const r = await run(requests.hgetall('all'));
      assert.equal(r.status, 200);
      assert.equal(r.values.length, 0);
      assert.deepEqual(pairsToMap(r.pairs), new Map<string, KvValue>([['a', 'x'], ['b', 2n], ['c', true]]));
    });

    test('HGETALL of a missing table is empty', async () => {
      const r = await run(requests.hgetall('never-written'));
      assert.equal(r.status, 200);
      assert.deepEqual(r.pairs, []);
    });

    test('HMGET answers values in key order with the empty value for missing keys', async () => {
      await values(requests.hmset('mg', [['a', 'A'], ['b', 2n]]));
      assert.deepEqual(await values(requests.hmget('mg', ['b', 'missing', 'a', 'b'])), [2n, null, 'A', 2n]);
      assert.deepEqual(await values(requests.hmget('mg-missing-table', ['x'])), [null]);
      assert.deepEqual(await values(requests.hmget('mg', [])), []);
    });

    test('HMSET stores all and answers previous values in order', async () => {
      await values(requests.hset('ms', 'b', 'old-b'));
      assert.deepEqual(await values(requests.hmset('ms', [['a', 1n], ['b', 'new-b'], ['c', 3.5]])), [null, 'old-b', null]);
      assert.deepEqual(await values(requests.hmget('ms', ['a', 'b', 'c'])), [1n, 'new-b', 3.5]);
    });

    test('HMSET naming one key twice keeps the last value', async () => {
      assert.deepEqual(await values(requests.hmset('dup', [['k', 'first'], ['k', 'second']])), [null, 'first']);
      assert.deepEqual(await values(requests.hget('dup', 'k')), ['second']);
    });

    test('HDEL answers the removed value, or the empty value when absent', async () => {
      await values(requests.hset('del', 'k', 42n));
      assert.deepEqual(await values(requests.hdel('del', 'k')), [42n]);
      assert.deepEqual(await values(requests.hdel('del', 'k')), [null]);
      assert.deepEqual(await values(requests.hexist('del', 'k')), [false]);
      assert.deepEqual(await values(requests.hdel('del-missing-table', 'k')), [null]);
    });

    test('HMDEL removes all and answers removed values in order', async () => {
      await values(requests.hmset('md', { a: 'A', c: 'C' }));
      assert.deepEqual(await values(requests.hmdel('md', ['a', 'b', 'c'])), ['A', null, 'C']);
      assert.deepEqual((await run(requests.hgetall('md'))).pairs, []);
    });

    test('HEXIST and HMEXIST answer bools in order', async () => {
      await values(requests.hset('ex', 'yes', 'v'));
      assert.deepEqual(await values(requests.hexist('ex', 'yes')), [true]);
      assert.deepEqual(await values(requests.hexist('ex', 'no')), [false]);
      assert.deepEqual(await values(requests.hmexist('ex', ['no', 'yes', 'no'])), [false, true, false]);
      const r = await run(requests.hexist('ex', 'yes'));
      assert.equal(r.values[0]?.value?.$case, 'bool');
    });

    test('empty-string and unicode tables and keys are ordinary names', async () => {
      await values(requests.hset('', '', 'empty'));
      await values(requests.hset('表', '键🔑', 'unicode'));
      assert.deepEqual(await values(requests.hget('', '')), ['empty']);
      assert.deepEqual(await values(requests.hget('表', '键🔑')), ['unicode']);
      await expectError(requests.hget('表', ''), 404, 'Not found: table 表, key ');
    });

    test('a request with no command is a 400', async () => {
      await expectError({ requestData: undefined }, 400, /no command/);
    });

    test('a multi-key command over the key limit is a 400 and changes nothing', async () => {
      const keys = Array.from({ length: 51 }, (_, i) => `k${i}`);
      await expectError(requests.hmget('lim', keys), 400, /51 keys exceed the maximum of 50/);
      await expectError(requests.hmset('lim', keys.map((k) => [k, 1n] as const)), 400, /maximum of 50/);
      assert.deepEqual((await run(requests.hgetall('lim'))).pairs, []);
    });

    test('PUBLISH with no subscribers is a 200 with no values', async () => {
      const r = await run(requests.publish('nobody', 'hello'));
      assert.equal(r.status, 200);
      assert.deepEqual(r.values, []);
    });

    test('UNSUBSCRIBE of an unknown id is a 404', async () => {
      await expectError(requests.unsubscribe('topic', 12345), 404, 'Not found: subscription 12345 on topic topic');
    });

    test('SUBSCRIBE without a stream to deliver on is a 400', async () => {
      await expectError(requests.subscribe('topic'), 400, /needs a stream/);
    });
  });
}
