/** Publish/subscribe over real connections (SPEC 1.5, 1.6). */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { requests } from '../src/protocol/requests.js';
import { fromValue, type KvValue } from '../src/protocol/values.js';
import { forEachTransport } from './helpers/transports.js';
import { RawPeer, startServer, type Running } from './helpers/server.js';
import { until } from './helpers/wait.js';


async function collect(sub: AsyncIterable<KvValue[]>, n: number): Promise<KvValue[][]> {
  const out: KvValue[][] = [];
  for await (const m of sub) {
    out.push(m);
    if (out.length === n) break;
  }
  return out;
}

forEachTransport('pub/sub', (env) => {
  test('fan-out to 100 subscribers, each in publish order', async () => {
    const subs = await Promise.all(Array.from({ length: 100 }, () => env.kv.subscribe('fan')));
    const ids = new Set(subs.map((s) => s.id));
    assert.equal(ids.size, 100, 'ids are unique');
    assert.ok(subs.every((s) => s.id > 0));
    const received = Promise.all(subs.map((s) => collect(s, 50)));
    for (let i = 0; i < 50; i++) await env.kv.publish('fan', BigInt(i), `m${i}`);
    const all = await received;
    const expected = Array.from({ length: 50 }, (_, i) => [BigInt(i), `m${i}`]);
    for (const got of all) assert.deepEqual(got, expected);
    await until(() => env.running.service.pubsub.size === 0, 'subscriptions to be forgotten after leaving the loop');
  });

  test('PUBLISH carries every value type and an empty message', async () => {
    const sub = await env.kv.subscribe('types');
    const got = collect(sub, 2);
    await env.kv.publish('types', 'a', Buffer.from([1]), 7n, 1.5, true, null);
    await env.kv.publish('types');
    assert.deepEqual(await got, [['a', Buffer.from([1]), 7n, 1.5, true, null], []]);
  });

  test('UNSUBSCRIBE from another connection ends the subscriber\'s stream', async () => {
    const other = await env.running.client();
    const sub = await other.subscribe('bye');
    const ended = collect(sub, 1000);
    await env.kv.publish('bye', 'one');
    await until(() => env.running.service.pubsub.size >= 1, 'subscription');
    await env.kv.unsubscribe('bye', sub.id);
    assert.deepEqual(await ended, [['one']]);
    await sub.closed;
    await assert.rejects(env.kv.unsubscribe('bye', sub.id), /Not found/);
    await other.close();
  });

  test('UNSUBSCRIBE with the right id on the wrong topic is a 404', async () => {
    const sub = await env.kv.subscribe('right');
    await assert.rejects(env.kv.unsubscribe('wrong', sub.id), (e: Error & { status?: number }) => e.status === 404);
    await sub.unsubscribe();
  });
});

describe('pub/sub edge cases over TCP', () => {
  let running: Running;
  before(async () => {
    running = await startServer({ subscriberBacklogMessages: 100, subscriberBacklogBytes: 1024 * 1024 });
  });
  after(() => running.close());

  test('a subscriber that exits abruptly is forgotten at once', async () => {
    const peer = await RawPeer.connect(running.port);
    peer.send(requests.subscribe('abrupt'));
    const [first] = await peer.responses(1);
    assert.equal(first.status, 200);
    assert.equal(first.values[0]?.value?.$case, 'integer');
    assert.equal(running.service.pubsub.size, 1);
    peer.destroy();
    await until(() => running.service.pubsub.size === 0, 'the subscription to be dropped');
  });

  test('anything sent on a subscription stream is a 400 and ends the subscription', async () => {
    const peer = await RawPeer.connect(running.port);
    peer.send(requests.subscribe('strict'));
    await peer.responses(1);
    peer.send(requests.hget('t', 'k'));
    const [r] = await peer.responses(1);
    assert.equal(r.status, 400);
    assert.match(r.message, /subscription stream/);
    await peer.closed();
    assert.equal(running.service.pubsub.size, 0);
  });

  test('a subscriber that never reads is disconnected; the others get every message', async () => {
    const kv = await running.client();
    const stalled = await RawPeer.connect(running.port);
    stalled.send(requests.subscribe('flood'));
    await stalled.responses(1);
    stalled.socket.pause();
    const good = await kv.subscribe('flood');
    const got: KvValue[][] = [];
    const reading = (async () => {
      for await (const m of good) got.push(m);
    })();
    // Loopback socket buffers hold megabytes, so publish until the server gives up on the
    // stalled subscriber (bounded), then a little more.
    const payload = 'p'.repeat(1000);
    let sent = 0;
    const subscribers = (): number => running.service.pubsub.size;
    assert.equal(subscribers(), 2);
    for (; sent < 100_000 && subscribers() === 2; sent++) await kv.publish('flood', BigInt(sent), payload);
    assert.equal(subscribers(), 1, 'the stalled subscriber was disconnected');
    stalled.destroy();
    for (let i = 0; i < 10; i++) await kv.publish('flood', BigInt(sent++), payload);
    await until(() => got.length === sent, `the reading subscriber to get all ${sent} messages`, 20_000);
    assert.ok(got.every((m, i) => m[0] === BigInt(i)), 'in order, none missing');
    await good.unsubscribe();
    await reading;
    await until(() => running.service.pubsub.size === 0, 'no subscriptions left');
    assert.equal(running.service.pubsub.size, 0);
    await kv.close();
  });

  test('the subscription id answer comes before any message, ids grow', async () => {
    const a = await RawPeer.connect(running.port);
    const b = await RawPeer.connect(running.port);
    a.send(requests.subscribe('order'));
    b.send(requests.subscribe('order'));
    const [[ra], [rb]] = await Promise.all([a.responses(1), b.responses(1)]);
    const ida = fromValue(ra.values[0]) as bigint;
    const idb = fromValue(rb.values[0]) as bigint;
    assert.notEqual(ida, idb);
    const kv = await running.client();
    await kv.publish('order', 'hi');
    const [[ma], [mb]] = await Promise.all([a.responses(1), b.responses(1)]);
    assert.deepEqual(ma.values.map(fromValue), ['hi']);
    assert.deepEqual(mb.values.map(fromValue), ['hi']);
    a.destroy();
    b.destroy();
    await kv.close();
  });
});

describe('client subscriptions', () => {
  test('unsubscribe() twice at once, or while leaving the loop, resolves both', async () => {
    const running = await startServer();
    try {
      const kv = await running.client();
      const sub = await kv.subscribe('twice');
      const results = await Promise.allSettled([sub.unsubscribe(), sub.unsubscribe()]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled']);
      const sub2 = await kv.subscribe('twice');
      const loop = (async () => {
        for await (const _ of sub2) {
          void sub2.unsubscribe();
          break;
        }
      })();
      await kv.publish('twice', 'go');
      await loop;
      await sub2.closed;
      await kv.close();
    } finally {
      await running.close();
    }
  });
});
