/**
 * Two protokv nodes over one Redis Cluster (3 masters + 3 replicas), end to end through real
 * sockets: what one node acknowledges the other sees, multi-key writes are seen whole, concurrent
 * read-modify-writes from both nodes stay exact, and pub/sub spans the nodes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { requests } from '../src/protocol/requests.js';
import { fromValue, type KvValue } from '../src/protocol/values.js';
import type { KvClient } from '../src/client/client.js';
import type { Subscription } from '../src/client/core/subscription.js';
import { RedisCluster, startRedisNode, type RedisBackedNode } from './helpers/redis-cluster.js';
import { RawPeer } from './helpers/server.js';
import { runCli, startServerProcess } from './helpers/cli.js';

let cluster: RedisCluster;
let a: RedisBackedNode;
let b: RedisBackedNode;
let ca: KvClient;
let cb: KvClient;

before(async () => {
  cluster = await RedisCluster.start();
  const url = cluster.url('?prefix=e2e:');
  [a, b] = await Promise.all([startRedisNode(url), startRedisNode(url)]);
  [ca, cb] = await Promise.all([a.client(), b.client()]);
});

after(async () => {
  await Promise.all([ca?.close(), cb?.close()]);
  await Promise.all([a?.close(), b?.close()]);
  await cluster?.stop();
});

/** The next `n` messages of a subscription. */
async function take(sub: Subscription, n: number): Promise<KvValue[][]> {
  const out: KvValue[][] = [];
  if (n === 0) return out;
  for await (const message of sub) {
    out.push(message);
    if (out.length === n) break;
  }
  return out;
}

describe('two nodes over a Redis Cluster', () => {
  test('a write acknowledged by one node is seen by the other, with its type', async () => {
    const values: KvValue[] = ['text', Buffer.from([0, 255]), 1n << 62n, 2.5, true, null];
    for (let i = 0; i < 60; i++) {
      const table = `table-${i}`;
      const value = values[i % values.length];
      assert.equal(await ca.hset(table, 'k', value), undefined);
      assert.deepEqual(await cb.hget(table, 'k'), value, table);
      assert.deepEqual(await cb.hset(table, 'k', 'second'), value ?? undefined);
      assert.equal(await ca.hget(table, 'k'), 'second');
    }
    await cb.hmset('pairs', { x: 1n, y: 'why', z: Buffer.from('zed') });
    assert.deepEqual(await ca.hgetall('pairs'), new Map<string, KvValue>([['x', 1n], ['y', 'why'], ['z', Buffer.from('zed')]]));
    assert.deepEqual(await ca.hmdel('pairs', ['x', 'nope']), [1n, undefined]);
    assert.deepEqual(await cb.hmexist('pairs', ['x', 'y']), [false, true]);

    const hlen = await cb.send(requests.hlen('pairs'));
    assert.deepEqual(hlen.values.map(fromValue), [2n]);
    const scan = await cb.send(requests.hscan('pairs', '', 10));
    assert.deepEqual(scan.pairs.map((p) => p.key).sort(), ['y', 'z']);
    const tables = await ca.send(requests.tables('', 1000));
    const names = tables.pairs.map((p) => p.key);
    assert.ok(names.includes('pairs') && names.includes('table-0'), names.join(','));
    assert.deepEqual((await cb.send(requests.hdrop('pairs'))).values.map(fromValue), [2n]);
    assert.deepEqual(await ca.hgetall('pairs'), new Map());
  });

  test('a read pipelined right behind a write sees it, on every shard', async () => {
    const rounds = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const [set, get] = await Promise.all([ca.hset(`rw-${i % 40}`, `k${i}`, BigInt(i)), ca.hget(`rw-${i % 40}`, `k${i}`)]);
        return { set, get, i };
      }),
    );
    for (const { set, get, i } of rounds) {
      assert.equal(set, undefined);
      assert.equal(get, BigInt(i));
    }
  });

  test('HMSET snapshots are seen whole from the other node', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    let writing = true;
    const writer = (async () => {
      for (let round = 1; round <= 60; round++) await ca.hmset('snapshot', keys.map((k) => [k, BigInt(round)] as const));
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const all = await cb.hgetall('snapshot');
      assert.ok(all.size === 0 || all.size === keys.length, `saw ${all.size} keys`);
      assert.ok(new Set(all.values()).size <= 1, `saw several rounds at once: ${[...new Set(all.values())].join(',')}`);
      reads++;
    }
    await writer;
    assert.ok(reads > 0);
  });

  test('concurrent HSETs of one key from both nodes return each previous value exactly once', async () => {
    const n = 200;
    const writes = [
      ...Array.from({ length: n }, (_, i) => ca.hset('contended', 'k', `a${i}`)),
      ...Array.from({ length: n }, (_, i) => cb.hset('contended', 'k', `b${i}`)),
    ];
    const previous = await Promise.all(writes);
    const final = await ca.hget('contended', 'k');
    const seen = [...previous, final].map((v) => (v === undefined ? 'new' : String(v)));
    const expected = ['new', ...Array.from({ length: n }, (_, i) => `a${i}`), ...Array.from({ length: n }, (_, i) => `b${i}`)];
    assert.deepEqual(seen.sort(), expected.sort());
  });

  test('pub/sub spans the nodes, with one order per topic and ids unique across nodes', async () => {
    const subs = [await ca.subscribe('news'), await cb.subscribe('news'), await cb.subscribe('news'), await ca.subscribe('other')];
    assert.equal(new Set(subs.map((s) => s.id)).size, subs.length, `ids ${subs.map((s) => s.id).join(',')}`);
    const received = subs.slice(0, 3).map((s) => take(s, 200));
    const publishers = [ca, cb].map(async (client, p) => {
      for (let i = 0; i < 100; i++) await client.publish('news', `${p}-${i}`, BigInt(i));
    });
    await Promise.all(publishers);
    const [first, ...others] = await Promise.all(received);
    // Each publisher's messages in its publish order, and every subscriber sees the same interleaving.
    for (const p of [0, 1]) {
      assert.deepEqual(
        first.filter((m) => String(m[0]).startsWith(`${p}-`)).map((m) => m[1]),
        Array.from({ length: 100 }, (_, i) => BigInt(i)),
      );
    }
    for (const other of others) assert.deepEqual(other, first);
    await cb.publish('other', 'only here');
    assert.deepEqual(await take(subs[3], 1), [['only here']]);
    for (const sub of subs) await sub.unsubscribe();
  });

  test('UNSUBSCRIBE from any node ends the subscription where it lives; unknown ids are 404', async () => {
    const sub = await ca.subscribe('topic-u');
    const other = await cb.subscribe('topic-u');
    const statusOf = async (topic: string, id: number) => (await cb.send(requests.unsubscribe(topic, id))).status;
    assert.equal(await statusOf('topic-u', sub.id), 200);
    await sub.closed;
    assert.equal(await statusOf('topic-u', sub.id), 404);
    assert.equal(await statusOf('another-topic', other.id), 404);
    assert.equal(await statusOf('topic-u', 4_000_000_000), 404);
    // The other subscription still receives.
    await ca.publish('topic-u', 'still here');
    assert.deepEqual(await take(other, 1), [['still here']]);
    await other.unsubscribe();
  });

  test('a subscriber that closes its connection is forgotten by every node', async () => {
    const peer = await RawPeer.connect(a.port);
    peer.send(requests.subscribe('closing'));
    const [first] = await peer.responses(1);
    const id = Number(fromValue(first.values[0]));
    assert.ok(id > 0);
    peer.destroy();
    let status = 200;
    for (let i = 0; i < 200 && status !== 404; i++) {
      status = (await cb.send(requests.unsubscribe('closing', id))).status;
      if (status !== 404) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, 404);
  });

  test('protokv serve --store redis-cluster:// serves the cluster; an unreachable store stops it naming the address', async () => {
    await ca.hset('cli-table', 'k', 'written by node a');
    const server = await startServerProcess(['--listen', '127.0.0.1:0', '--store', cluster.url('?prefix=e2e:')]);
    try {
      const listening = server.logs.find((l) => l.msg === 'listening');
      assert.equal(listening?.store, `redis-cluster://${cluster.seeds}`);
      const get = await runCli(['hget', 'cli-table', 'k', '--server', server.address]);
      assert.equal(get.code, 0, get.stderr);
      assert.match(get.stdout, /written by node a/);
    } finally {
      await server.stop();
    }
    const refused = await runCli(['serve', '--listen', '127.0.0.1:0', '--store', 'redis-cluster://127.0.0.1:1,127.0.0.1:2']);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout + refused.stderr, /cannot reach the store at redis-cluster:\/\/127\.0\.0\.1:1,127\.0\.0\.1:2: 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});
