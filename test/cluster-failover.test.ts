/**
 * A master of the Redis Cluster is killed with SIGKILL under write load through two protokv
 * nodes. Clients get answers — 200 or 503, nothing else — and none hangs; service on the killed
 * master's tables resumes by itself once a replica takes over; subscriptions on its topics resume
 * too; and with `wait_replicas=1` no acknowledged write is lost. (`bench/failover.ts` measures the
 * outage and the losses.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KvClient } from '../src/client/client.js';
import { requests } from '../src/protocol/requests.js';
import { toValue as v } from '../src/protocol/values.js';
import { KvError } from '../src/errors.js';
import { RedisStore } from '../src/storage/redis.js';
import { parseRedisUrl } from '../src/storage/redis-url.js';
import { RedisCluster, startRedisNode, type RedisBackedNode } from './helpers/redis-cluster.js';
import { runFailover, type FailoverResult } from './helpers/failover.js';

/** Longest any single request may take: far above the store's 2 s timeout, far below a hang. */
const NO_HANG_MS = 15_000;

let cluster: RedisCluster;
const nodes: RedisBackedNode[] = [];
const clients: KvClient[] = [];

before(async () => {
  // A short node timeout keeps the failover quick; the cluster is still healthy at rest.
  cluster = await RedisCluster.start({ nodeTimeoutMs: 2000 });
});

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await Promise.all(nodes.map((n) => n.close()));
  await cluster?.stop();
});

/** Two nodes over the cluster (with `query` on their store URL) and a client of each. */
async function twoNodes(query: string): Promise<KvClient[]> {
  const started = await Promise.all([startRedisNode(cluster.url(query)), startRedisNode(cluster.url(query))]);
  nodes.push(...started);
  const mine = await Promise.all(started.map((n) => n.client()));
  clients.push(...mine);
  return mine;
}

function assertBehaviour(result: FailoverResult): void {
  const statuses = Object.fromEntries(result.statuses);
  for (const status of Object.keys(statuses)) assert.ok(status === '200' || status === '503', `unexpected answer ${status}: ${JSON.stringify(statuses)}`);
  assert.ok(result.slowestMs < NO_HANG_MS, `a request took ${Math.round(result.slowestMs)} ms`);
  assert.ok(Number.isFinite(result.outageMs), 'writes to the killed master\'s tables never succeeded again');
  assert.ok(result.acknowledged > 0);
}

describe('a master killed under load', () => {
  test('without wait_replicas: 503s or successes, no hang, service resumes by itself; subscriptions too', async () => {
    const [ca, cb] = await twoNodes('?prefix=fo1:');
    const tables = Array.from({ length: 24 }, (_, i) => `table-${i}`);
    // Subscribers on one node to topics spread over every master (30 topics: the killed master
    // owns some of them but for a chance of (2/3)^30); the publisher is the other node.
    const topics = Array.from({ length: 30 }, (_, i) => `ticks-${i}`);
    const subscriptions = await Promise.all(topics.map((topic) => ca.subscribe(topic)));
    const received = topics.map(() => 0);
    const reading = subscriptions.map(async (subscription, i) => {
      for await (const _ of subscription) received[i]++;
    });
    const result = await runFailover({
      cluster,
      clients: [ca, cb],
      writers: 16,
      tables,
      warmupMs: 500,
      afterRecoveryMs: 300,
      recoveryTimeoutMs: 30_000,
      restartVictim: true,
    });
    assertBehaviour(result);
    // Messages published after the failover reach every subscriber (ioredis subscribes again).
    const before = [...received];
    for (let round = 0; round < 300 && received.some((n, i) => n === before[i]); round++) {
      for (const [i, topic] of topics.entries()) {
        if (received[i] > before[i]) continue;
        const status = (await cb.send(requests.publish(topic, BigInt(round)))).status;
        assert.ok(status === 200 || status === 503, `publish answered ${status}`);
      }
      await sleep(50);
    }
    const silent = topics.filter((_, i) => received[i] === before[i]);
    assert.deepEqual(silent, [], 'subscribers that received nothing after the failover');
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
    await Promise.all(reading);
  });

  test('with wait_replicas=1: no acknowledged write is lost', async () => {
    const [ca, cb] = await twoNodes('?prefix=fo2:&wait_replicas=1');
    const result = await runFailover({
      cluster,
      clients: [ca, cb],
      writers: 16,
      tables: Array.from({ length: 24 }, (_, i) => `table-${i}`),
      warmupMs: 500,
      afterRecoveryMs: 300,
      recoveryTimeoutMs: 30_000,
      restartVictim: true,
    });
    assertBehaviour(result);
    assert.equal(result.lost, 0, `${result.lost} of ${result.acknowledged} acknowledged writes lost`);
  });

  test('a store opened while a master is down starts, reports itself unhealthy, and recovers', async () => {
    const master = (await cluster.describe()).find((n) => n.role === 'master' && n.slots.length > 0)!;
    await cluster.node(master.port).kill('SIGKILL');
    const store = await RedisStore.open(parseRedisUrl(cluster.url('?prefix=fo3:')), { probeIntervalMs: 100 });
    try {
      assert.equal(store.healthy(), false);
      for (let i = 0; i < 20; i++) {
        const outcome = await store.set(`table-${i}`, 'k', v(1n)).then(
          () => 200,
          (err: unknown) => (err instanceof KvError ? err.status : String(err)),
        );
        assert.ok(outcome === 200 || outcome === 503, `answered ${outcome}`);
      }
      for (let i = 0; i < 600 && !store.healthy(); i++) await sleep(50);
      assert.equal(store.healthy(), true, 'the store never became healthy after the failover');
      for (let i = 0; i < 20; i++) await store.set(`table-${i}`, 'k', v(2n));
    } finally {
      await store.close();
      await cluster.node(master.port).restart();
      await cluster.waitHealthy();
    }
  });
});
