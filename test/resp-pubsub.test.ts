/**
 * Pub/sub between the protocols: a RESP channel is a protokv topic. RESP PUBLISH reaches protobuf
 * subscribers and protobuf PUBLISH reaches RESP subscribers (channel and pattern, RESP2 arrays and
 * RESP3 pushes); PUBLISH counts subscribers of both kinds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { requests } from '../src/protocol/requests.js';
import type { KvClient } from '../src/client/client.js';
import type { Subscription } from '../src/client/subscription.js';
import { RawResp, startResp, type Reply, type RespEnv } from './helpers/resp.js';
import { until } from './helpers/wait.js';

const bulk = (s: string | Buffer): Reply => ({ t: 'bulk', v: Buffer.isBuffer(s) ? s : Buffer.from(s) });
const int = (n: number): Reply => ({ t: 'int', v: BigInt(n) });
const message = (kind: 'array' | 'push', channel: string, payload: string | Buffer): Reply => ({ t: kind, v: [bulk('message'), bulk(channel), bulk(payload)] });

async function next<T>(sub: Subscription, timeoutMs = 10_000): Promise<T> {
  const it = sub[Symbol.asyncIterator]();
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no message')), timeoutMs).unref());
  const r = await Promise.race([it.next(), timer]);
  return r.value as T;
}

describe('pub/sub across RESP and protobuf', () => {
  let env: RespEnv;
  let kv: KvClient;
  before(async () => {
    env = await startResp({ protobuf: true });
    kv = await env.kv();
  });
  after(async () => {
    await kv.close();
    await env.close();
  });

  test('RESP PUBLISH reaches protobuf subscribers: a string when UTF-8, binary otherwise; the count includes them', async () => {
    const sub = await kv.subscribe('news');
    const resp = await RawResp.connect(env.port);
    try {
      assert.deepEqual(await resp.call('PUBLISH', 'news', 'héllo'), int(1));
      assert.deepEqual(await next(sub), ['héllo']);
      assert.deepEqual(await resp.call('PUBLISH', 'news', Buffer.from([0xff, 0x00])), int(1));
      assert.deepEqual(await next(sub), [Buffer.from([0xff, 0x00])]);
      assert.deepEqual(await resp.call('PUBSUB', 'NUMSUB', 'news'), { t: 'array', v: [bulk('news'), int(1)] });
      assert.deepEqual(await resp.call('PUBSUB', 'CHANNELS', 'n*'), { t: 'array', v: [bulk('news')] });
    } finally {
      resp.destroy();
      await sub.unsubscribe();
    }
  });

  for (const protocol of [2, 3] as const) {
    test(`protobuf PUBLISH of n values reaches RESP${protocol} subscribers as n messages (none: one empty message)`, async () => {
      const kind = protocol === 2 ? 'array' : 'push';
      const sub = await RawResp.connect(env.port);
      const psub = await RawResp.connect(env.port);
      try {
        if (protocol === 3) {
          await sub.call('HELLO', '3');
          await psub.call('HELLO', '3');
        }
        assert.deepEqual(await sub.call('SUBSCRIBE', 'news', 'other'), { t: kind, v: [bulk('subscribe'), bulk('news'), int(1)] });
        assert.deepEqual(await sub.reply(), { t: kind, v: [bulk('subscribe'), bulk('other'), int(2)] });
        assert.deepEqual(await psub.call('PSUBSCRIBE', 'ne*'), { t: kind, v: [bulk('psubscribe'), bulk('ne*'), int(1)] });
        await kv.publish('news', 'a', 42n, 1.5, true, Buffer.from([0xff]), null);
        const expected = ['a', '42', '1.5', 'true', Buffer.from([0xff]), ''];
        assert.deepEqual(await sub.replies(6), expected.map((p) => message(kind, 'news', p)));
        assert.deepEqual(
          await psub.replies(6),
          expected.map((p) => ({ t: kind, v: [bulk('pmessage'), bulk('ne*'), bulk('news'), bulk(p)] })),
        );
        await kv.publish('news');
        assert.deepEqual(await sub.reply(), message(kind, 'news', ''));
        assert.deepEqual(await psub.reply(), { t: kind, v: [bulk('pmessage'), bulk('ne*'), bulk('news'), bulk('')] });
        // Publishing from RESP counts the channel subscriber and the pattern subscriber.
        const publisher = await RawResp.connect(env.port);
        assert.deepEqual(await publisher.call('PUBLISH', 'news', 'x'), int(2));
        publisher.destroy();
        assert.deepEqual(await sub.reply(), message(kind, 'news', 'x'));
        if (protocol === 3) {
          // RESP3 allows any command while subscribed; pushes and replies interleave in order.
          assert.deepEqual(await sub.call('HSET', 'h', 'f', 'v'), int(1));
        } else {
          assert.deepEqual(await sub.call('HSET', 'h', 'f', 'v'), {
            t: 'error',
            v: "ERR Can't execute 'hset': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
          });
          assert.deepEqual(await sub.call('PING'), { t: 'array', v: [bulk('pong'), bulk('')] });
        }
        assert.deepEqual(await sub.call('UNSUBSCRIBE'), { t: kind, v: [bulk('unsubscribe'), bulk('news'), int(1)] });
        assert.deepEqual(await sub.reply(), { t: kind, v: [bulk('unsubscribe'), bulk('other'), int(0)] });
        assert.deepEqual(await sub.call('PING'), { t: 'simple', v: 'PONG' });
      } finally {
        sub.destroy();
        psub.destroy();
      }
      await until(() => env.service.pubsub.size === 0, 'subscriptions to be forgotten');
    });
  }

  test('a protobuf UNSUBSCRIBE of a RESP subscription ends it, and the RESP client is told', async () => {
    const sub = await RawResp.connect(env.port);
    try {
      await sub.call('SUBSCRIBE', 'admin');
      // The only subscription on the topic is the RESP client's; find its id the way an operator would.
      const ids = [...Array(1000).keys()].map((i) => i + 1);
      let ended = false;
      for (const id of ids) {
        const res = await kv.send(requests.unsubscribe('admin', id));
        if (res.status === 200) {
          ended = true;
          break;
        }
      }
      assert.ok(ended);
      assert.deepEqual(await sub.reply(), { t: 'array', v: [bulk('unsubscribe'), bulk('admin'), int(0)] });
      assert.deepEqual(await sub.call('PING'), { t: 'simple', v: 'PONG' }, 'no longer in subscribed mode');
    } finally {
      sub.destroy();
    }
  });

  test('channels and patterns are binary-safe', async () => {
    const channel = Buffer.from([0x63, 0xff]);
    const sub = await RawResp.connect(env.port);
    const pub = await RawResp.connect(env.port);
    try {
      await sub.call('SUBSCRIBE', channel);
      await sub.call('PSUBSCRIBE', Buffer.from([0x63, 0x3f]));
      assert.deepEqual(await pub.call('PUBLISH', channel, 'm'), int(2));
      assert.deepEqual(await sub.replies(2), [
        { t: 'array', v: [bulk('message'), bulk(channel), bulk('m')] },
        { t: 'array', v: [bulk('pmessage'), bulk(Buffer.from([0x63, 0x3f])), bulk(channel), bulk('m')] },
      ]);
      assert.deepEqual(await pub.call('PUBLISH', Buffer.from([0x63, 0xfe]), 'm'), int(1), 'only the pattern matches another byte');
    } finally {
      sub.destroy();
      pub.destroy();
    }
  });

  test('PUBSUB NUMPAT counts distinct patterns; CLIENT REPLY OFF does not silence subscription replies', async () => {
    const a = await RawResp.connect(env.port);
    const b = await RawResp.connect(env.port);
    try {
      a.send('CLIENT', 'REPLY', 'OFF');
      assert.deepEqual(await a.call('PSUBSCRIBE', 'x*', 'y*'), { t: 'array', v: [bulk('psubscribe'), bulk('x*'), int(1)] });
      await a.reply();
      await b.call('PSUBSCRIBE', 'x*');
      const counter = await RawResp.connect(env.port);
      assert.deepEqual(await counter.call('PUBSUB', 'NUMPAT'), int(2));
      counter.destroy();
    } finally {
      a.destroy();
      b.destroy();
    }
  });
});
