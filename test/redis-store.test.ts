/**
 * The Redis store against real Redis: the shared storage conformance suite on a standalone
 * redis-server and on a 3-master + 3-replica Redis Cluster, then what only this store has
 * (key layout, paging across cluster nodes, replicas, start-up errors).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { storeConformance } from '../src/storage/conformance.js';
import { RedisStore } from '../src/storage/redis.js';
import { RedisBroker } from '../src/storage/redis-broker.js';
import { parseRedisUrl } from '../src/storage/redis-url.js';
import { KvError } from '../src/errors.js';
import { toValue as v } from '../src/protocol/values.js';
import { RedisCluster, RedisStandalone } from './helpers/redis-cluster.js';
import { makeTlsFixture } from './helpers/certs.js';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

let standalone: RedisStandalone;
let cluster: RedisCluster;
let stores = 0;

before(async () => {
  [standalone, cluster] = await Promise.all([RedisStandalone.start(), RedisCluster.start()]);
});

after(async () => {
  await Promise.all([standalone?.stop(), cluster?.stop()]);
});

/** A store of its own: every one gets a fresh key prefix on the shared engine. */
function openStore(url: () => string, query = ''): Promise<RedisStore> {
  const prefix = `test${++stores}:`;
  return RedisStore.open(parseRedisUrl(`${url()}?prefix=${prefix}${query}`));
}

storeConformance('redis (standalone)', () => openStore(() => standalone.url()));
storeConformance('redis (cluster)', () => openStore(() => cluster.url()));
storeConformance('redis (cluster, wait_replicas=1)', () => openStore(() => cluster.url(), '&wait_replicas=1'));

describe('redis store', () => {
  test('a table is one hash under the prefix, its values the encoded Value', async () => {
    const store = await RedisStore.open(parseRedisUrl(`${standalone.url()}?prefix=layout:`));
    const raw = new Redis({ port: standalone.port, lazyConnect: true });
    try {
      await raw.connect();
      await store.set('we{ir}d%', 'k', v(42n));
      assert.deepEqual(await raw.keys('layout:*'), ['layout:{t:we%7Bir%7Dd%25}']);
      assert.deepEqual(await raw.hgetBuffer('layout:{t:we%7Bir%7Dd%25}', 'k'), Buffer.from([0x18, 42]));
      assert.deepEqual((await store.tables('', 10)).items, [{ name: 'we{ir}d%', keys: 1 }]);
    } finally {
      raw.disconnect();
      await store.close();
    }
  });

  test('tables pages across every master of the cluster', async () => {
    const store = await openStore(() => cluster.url());
    try {
      const names = Array.from({ length: 40 }, (_, i) => `table-${i}`);
      for (const name of names) await store.set(name, 'k', v(1n));
      // The tables are spread over the three masters.
      const masters = (await cluster.describe()).filter((n) => n.role === 'master');
      const perMaster = await Promise.all(
        masters.map(async (m) => (await cluster.node(m.port).call('KEYS', `${store.layout.prefix}*`)) as string[]),
      );
      assert.equal(perMaster.filter((keys) => keys.length > 0).length, 3);
      for (const count of [1, 7, 100]) {
        const seen: string[] = [];
        let cursor = '';
        do {
          const page = await store.tables(cursor, count);
          assert.ok(page.items.length <= count);
          seen.push(...page.items.map((t) => t.name));
          cursor = page.cursor;
        } while (cursor !== '');
        assert.deepEqual([...new Set(seen)].sort(), [...names].sort(), `count ${count}`);
      }
    } finally {
      await store.close();
    }
  });

  test('large tables are read in pages, each key once', async () => {
    const store = await openStore(() => cluster.url());
    try {
      const n = 25_000;
      for (let i = 0; i < n; i += 5000) {
        await store.setMany('big', Array.from({ length: 5000 }, (_, k) => ({ key: `k${i + k}`, value: v(BigInt(i + k)) })));
      }
      const all = await store.getAll('big');
      assert.equal(all.length, n);
      assert.equal(new Set(all.map((e) => e.key)).size, n);
      assert.deepEqual(all.find((e) => e.key === 'k12345')?.value, v(12345n));
    } finally {
      await store.close();
    }
  });

  test('with wait_replicas=1 a write is on a replica when it is acknowledged', async () => {
    const store = await openStore(() => cluster.url(), '&wait_replicas=1');
    try {
      const hash = store.layout.tableKey('t');
      for (let i = 0; i < 50; i++) {
        await store.set('t', `k${i}`, v(BigInt(i)));
        const master = await cluster.masterOf(slotOf(await cluster.node(cluster.nodes[0].port).call('CLUSTER', 'KEYSLOT', hash)));
        const replica = (await cluster.describe()).find((n) => n.masterId === master.id)!;
        const replicated = await cluster.node(replica.port).call('HEXISTS', hash, `k${i}`).catch(async () => {
          // A replica answers reads of its master's slots only in READONLY mode.
          const conn = cluster.node(replica.port).connection();
          await conn.connect();
          try {
            await conn.readonly();
            return await conn.hexists(hash, `k${i}`);
          } finally {
            conn.disconnect();
          }
        });
        assert.equal(replicated, 1, `k${i} is on the replica`);
      }
    } finally {
      await store.close();
    }
  });

  test('wait_replicas beyond the replicas there are: writes fail with 503 and say so', async () => {
    const store = await openStore(() => cluster.url(), '&wait_replicas=2&timeout_ms=400');
    try {
      await assert.rejects(
        store.set('t', 'k', v(1n)),
        (err: unknown) => err instanceof KvError && err.status === 503 && /1 of 2 replicas/.test(err.message),
      );
      // Reads are not affected.
      assert.deepEqual(await store.get('t', 'k'), v(1n));
    } finally {
      await store.close();
    }
  });

  test('start-up errors name the address and the problem', async () => {
    const refused = (pattern: RegExp) => (err: unknown) => err instanceof Error && pattern.test(err.message);
    const closedPort = await closedPortNumber();
    await assert.rejects(
      RedisStore.open(parseRedisUrl(`redis://127.0.0.1:${closedPort}`), { startTimeoutMs: 3000 }),
      refused(new RegExp(`cannot reach the store at redis://127\\.0\\.0\\.1:${closedPort}: .*ECONNREFUSED`)),
    );
    await assert.rejects(
      RedisStore.open(parseRedisUrl(`redis-cluster://127.0.0.1:${standalone.port}`)),
      refused(/is not a Redis Cluster \(127\.0\.0\.1:\d+ has cluster support disabled\); use redis:\/\//),
    );
    await assert.rejects(
      RedisStore.open(parseRedisUrl(`redis://127.0.0.1:${cluster.nodes[0].port}`)),
      refused(/is a Redis Cluster node; use redis-cluster:\/\//),
    );
    const secured = await RedisStandalone.start(['--requirepass', 'sesame']);
    try {
      await assert.rejects(
        RedisStore.open(parseRedisUrl(`redis://:wrong@127.0.0.1:${secured.port}`)),
        refused(/the store at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused authentication .*WRONGPASS/),
      );
      await assert.rejects(RedisStore.open(parseRedisUrl(secured.url())), refused(/refused authentication .*NOAUTH/));
      const store = await RedisStore.open(parseRedisUrl(`redis://:sesame@127.0.0.1:${secured.port}`));
      await store.set('t', 'k', v('open'));
      assert.deepEqual(await store.get('t', 'k'), v('open'));
      await store.close();
    } finally {
      await secured.stop();
    }
  });
});

describe('redis store over TLS', () => {
  test('rediss:// with a CA and a client certificate; a missing certificate or a foreign CA stops start-up', async () => {
    const tls = await makeTlsFixture();
    const other = await makeTlsFixture();
    const server = await RedisStandalone.start([], {
      cert: tls.files.server,
      key: tls.files.serverKey,
      ca: tls.files.ca,
      clientCert: tls.files.client,
      clientKey: tls.files.clientKey,
    });
    try {
      const [ca, cert, key, foreignCa] = await Promise.all(
        [tls.files.ca, tls.files.client, tls.files.clientKey, other.files.ca].map((f) => readFile(f)),
      );
      const target = parseRedisUrl(server.url('?prefix=tls:'));
      const store = await RedisStore.open(target, { tls: { ca, cert, key } });
      try {
        await store.set('t', 'k', v(Buffer.from('over tls')));
        assert.deepEqual(await store.get('t', 'k'), v(Buffer.from('over tls')));
      } finally {
        await store.close();
      }
      const failed = (pattern: RegExp) => (err: unknown) => err instanceof Error && err.message.includes(`rediss://127.0.0.1:${server.port}`) && pattern.test(err.message);
      await assert.rejects(RedisStore.open(target, { tls: { ca } }), failed(/cannot reach the store/));
      await assert.rejects(RedisStore.open(target, { tls: { ca: foreignCa, cert, key } }), failed(/cannot reach the store .*certificate/i));
    } finally {
      await server.stop();
      await Promise.all([tls.cleanup(), other.cleanup()]);
    }
  });
});

describe('redis cluster over TLS', () => {
  test('rediss-cluster://: every master reached over mutual TLS, pub/sub included', async () => {
    const tls = await makeTlsFixture();
    const files = { cert: tls.files.server, key: tls.files.serverKey, ca: tls.files.ca, clientCert: tls.files.client, clientKey: tls.files.clientKey };
    const secure = await RedisCluster.start({ replicas: 0, tls: files });
    try {
      const [ca, cert, key] = await Promise.all([tls.files.ca, tls.files.client, tls.files.clientKey].map((f) => readFile(f)));
      const store = await RedisStore.open(parseRedisUrl(secure.url('?prefix=tls:')), { tls: { ca, cert, key } });
      try {
        const tables = Array.from({ length: 30 }, (_, i) => `table-${i}`);
        for (const [i, table] of tables.entries()) await store.set(table, 'k', v(BigInt(i)));
        for (const [i, table] of tables.entries()) assert.deepEqual(await store.get(table, 'k'), v(BigInt(i)));
        assert.equal(store.engine.masters().length, 3);
        const listed = (await store.tables('', 100)).items.map((t) => t.name).sort();
        assert.deepEqual(listed, [...tables].sort());
        // Sharded pub/sub over the TLS connections to each master.
        const broker = await RedisBroker.start(store.engine);
        const delivered: string[] = [];
        broker.attach({ deliver: (topic) => delivered.push(topic), end: () => false });
        const topics = Array.from({ length: 12 }, (_, i) => `topic-${i}`);
        await Promise.all(topics.map((topic) => broker.joined(topic, broker.nextId())));
        for (const topic of topics) await broker.publish(topic, [v('hello')]);
        for (let i = 0; i < 200 && delivered.length < topics.length; i++) await sleep(20);
        assert.deepEqual(delivered.sort(), [...topics].sort());
        await broker.close();
      } finally {
        await store.close();
      }
      await assert.rejects(
        RedisStore.open(parseRedisUrl(secure.url()), { tls: { ca } }),
        (err: unknown) => err instanceof Error && /cannot reach the store at rediss-cluster:\/\//.test(err.message),
      );
    } finally {
      await secure.stop();
      await tls.cleanup();
    }
  });
});

describe('redis store when Redis goes away', () => {
  test('requests fail fast with 503 naming the store, readiness follows, and service resumes by itself', async () => {
    const server = await RedisStandalone.start();
    const store = await RedisStore.open(parseRedisUrl(server.url('?prefix=outage:&timeout_ms=1000')), { probeIntervalMs: 100 });
    try {
      await store.set('t', 'k', v(1n));
      assert.equal(store.healthy(), true);
      await server.node.kill('SIGKILL');
      const unavailable = (err: unknown) => err instanceof KvError && err.status === 503 && /^Service unavailable: store /.test(err.message);
      for (let i = 0; i < 20; i++) {
        const started = Date.now();
        await assert.rejects(async () => await store.set('t', 'k', v(2n)), unavailable);
        await assert.rejects(async () => await store.get('t', 'k'), unavailable);
        assert.ok(Date.now() - started < 15_000, 'a request waited far longer than the timeout');
      }
      for (let i = 0; i < 200 && store.healthy(); i++) await sleep(20);
      assert.equal(store.healthy(), false);
      await server.node.restart();
      let answered = false;
      for (let i = 0; i < 300 && !answered; i++) {
        try {
          // A fresh server (no persistence): the old value is gone, the store works again.
          assert.equal(await store.set('t', 'k', v(3n)), undefined);
          answered = true;
        } catch (err) {
          assert.ok(unavailable(err), String(err));
          await sleep(50);
        }
      }
      assert.ok(answered, 'the store never came back');
      assert.deepEqual(await store.get('t', 'k'), v(3n));
      for (let i = 0; i < 200 && !store.healthy(); i++) await sleep(20);
      assert.equal(store.healthy(), true);
    } finally {
      await store.close();
      await server.stop();
    }
  });
});

function slotOf(reply: unknown): number {
  return Number(reply);
}

/** A port nothing listens on. */
async function closedPortNumber(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
