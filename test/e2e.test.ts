/** The end-to-end suite: every command over real sockets through the client library, per transport. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProtokvError } from '../src/client/errors.js';
import type { KvValue } from '../src/protocol/values.js';
import { forEachTransport } from './helpers/transports.js';

forEachTransport('end to end', (env) => {
  test('HSET / HGET / HDEL / HEXIST with typed values', async () => {
    assert.equal(await env.kv.hset('users', 'ada', 'Lovelace'), undefined, 'no previous value');
    assert.equal(await env.kv.hset('users', 'ada', 1815n), 'Lovelace');
    assert.equal(await env.kv.hget('users', 'ada'), 1815n);
    assert.equal(await env.kv.hexist('users', 'ada'), true);
    assert.equal(await env.kv.hdel('users', 'ada'), 1815n);
    assert.equal(await env.kv.hexist('users', 'ada'), false);
    assert.equal(await env.kv.hget('users', 'ada'), undefined);
    assert.equal(await env.kv.hdel('users', 'ada'), undefined, 'nothing removed');
  });

  test('a missing key is undefined, a stored empty value is null', async () => {
    assert.equal(await env.kv.hset('empties', 'e', null), undefined);
    assert.equal(await env.kv.hget('empties', 'e'), null);
    assert.equal(await env.kv.hget('empties', 'missing'), undefined);
    assert.deepEqual(await env.kv.hmget('empties', ['e', 'missing', 'e']), [null, undefined, null]);
    assert.deepEqual(await env.kv.hgetall('empties'), new Map([['e', null]]));
    // Writes cannot tell "was empty" from "was absent": both say there was no previous value.
    assert.equal(await env.kv.hset('empties', 'e', 'x'), undefined);
    assert.equal(await env.kv.hdel('empties', 'e'), 'x');
    assert.deepEqual(await env.kv.hmdel('empties', ['e']), [undefined]);
  });

  test('HMSET / HMGET / HGETALL / HMEXIST / HMDEL', async () => {
    const bytes = Buffer.from([1, 2, 3]);
    assert.deepEqual(await env.kv.hmset('m', { s: 'x', i: -5n, f: 0.25, b: false, y: bytes, e: null }), Array(6).fill(undefined));
    assert.deepEqual(await env.kv.hmget('m', ['i', 'nope', 'y', 'e']), [-5n, undefined, bytes, null]);
    assert.deepEqual(
      await env.kv.hgetall('m'),
      new Map<string, KvValue>([['s', 'x'], ['i', -5n], ['f', 0.25], ['b', false], ['y', bytes], ['e', null]]),
    );
    assert.deepEqual(await env.kv.hmexist('m', ['s', 'zz', 'e']), [true, false, true]);
    assert.deepEqual(await env.kv.hmdel('m', ['s', 'zz']), ['x', undefined]);
    assert.equal((await env.kv.hgetall('m')).size, 5);
  });

  test('errors carry status and message', async () => {
    const r = await env.kv.send({ requestData: undefined });
    assert.equal(r.status, 400);
    await assert.rejects(env.kv.hset('t', 'k', undefined as never), TypeError);
    await assert.rejects(env.kv.unsubscribe('t', 999_999), (e: unknown) => e instanceof ProtokvError && e.status === 404 && /^Not found/.test(e.message));
  });

  test('int64 extremes survive the network', async () => {
    for (const n of [(1n << 63n) - 1n, -(1n << 63n), (1n << 53n) + 1n]) {
      await env.kv.hset('big', 'n', n);
      assert.equal(await env.kv.hget('big', 'n'), n);
    }
  });

  test('large values travel compressed and come back whole', async () => {
    const big = 'x'.repeat(1 << 20);
    await env.kv.hset('large', 'v', big);
    assert.equal(await env.kv.hget('large', 'v'), big);
    const rnd = Buffer.alloc(300_000);
    for (let i = 0; i < rnd.length; i++) rnd[i] = (i * 2654435761) >>> 24;
    await env.kv.hset('large', 'b', rnd);
    assert.deepEqual(await env.kv.hget('large', 'b'), rnd);
  });

  test('hundreds of pipelined requests are answered in order', async () => {
    const writes = Array.from({ length: 500 }, (_, i) => env.kv.hset('pipe', `k${i}`, BigInt(i)));
    const reads = Array.from({ length: 500 }, (_, i) => env.kv.hget('pipe', `k${i}`));
    assert.deepEqual(await Promise.all(writes), Array.from({ length: 500 }, () => undefined));
    assert.deepEqual(await Promise.all(reads), Array.from({ length: 500 }, (_, i) => BigInt(i)));
  });

  test('small, compressed and sliced responses pipelined together keep their order', async () => {
    const sizes = [0, 10, 2_000, 5, 1_500_000, 1, 40_000, 3];
    await Promise.all(sizes.map((n, i) => env.kv.hset('mixed', `k${i}`, 'v'.repeat(n) + String(i))));
    const reads = Array.from({ length: 60 }, (_, j) => env.kv.hget('mixed', `k${j % sizes.length}`));
    const got = await Promise.all(reads);
    got.forEach((v, j) => {
      const i = j % sizes.length;
      assert.equal(v, 'v'.repeat(sizes[i]) + String(i), `response ${j}`);
    });
  });

  test('many clients at once', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, () => env.running.client()));
    await Promise.all(clients.map((c, i) => c.hset('multi', `c${i}`, BigInt(i))));
    const all = await env.kv.hgetall('multi');
    assert.equal(all.size, 20);
    await Promise.all(clients.map((c) => c.close()));
  });
});

forEachTransport('table commands through the client', (env) => {
  test('hlen, hscan pages, scan() and tables() over every page, hdrop', async () => {
    const keys = Array.from({ length: 250 }, (_, i) => `k${i}`);
    await env.kv.hmset('paged', keys.map((k, i) => [k, BigInt(i)] as [string, bigint]));
    await env.kv.hset('paged-too', 'only', null);
    assert.equal(await env.kv.hlen('paged'), 250);
    assert.equal(await env.kv.hlen('never-written'), 0);
    const first = await env.kv.hscan('paged', '', 100);
    assert.equal(first.items.length, 100);
    assert.notEqual(first.cursor, '');
    const seen = new Map<string, KvValue>();
    for await (const [k, v] of env.kv.scan('paged', { count: 33 })) seen.set(k, v);
    assert.equal(seen.size, 250);
    assert.equal(seen.get('k7'), 7n);
    const tables = new Map<string, number>();
    for await (const t of env.kv.tables({ count: 1 })) tables.set(t.name, t.keys);
    assert.equal(tables.get('paged'), 250);
    assert.equal(tables.get('paged-too'), 1);
    const page = await env.kv.tables('', 10_000);
    assert.equal(page.cursor, '');
    assert.ok(page.items.some((t) => t.name === 'paged' && t.keys === 250));
    assert.equal(await env.kv.hdrop('paged'), 250);
    assert.equal(await env.kv.hdrop('paged'), 0);
    await assert.rejects(env.kv.hscan('paged-too', 'not a cursor'), (e: Error) => e instanceof ProtokvError && e.status === 400);
  });
});
