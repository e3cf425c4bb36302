/**
 * Pub/sub fan-out in slices (SPEC 4): a publish to many subscribers is handed out a slice per turn
 * of the event loop, every subscriber still gets each message once, in publish order, and the
 * message is one shared object (and one shared frame) for all of them.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FANOUT_SLICE, PubSub, type PublishedMessage, type SubscriberContext, type SubscriptionSink } from '../src/service/pubsub.js';
import type { Value } from '../src/protocol/generated/abi.js';
import { isPromise } from '../src/storage/store.js';
import { startServer } from './helpers/server.js';

const text = (s: string): Value[] => [{ value: { $case: 'string', value: s } }];
const textOf = (m: PublishedMessage): string => (m.response.values[0]?.value as { value: string }).value;

/** A subscriber that records what it is handed. */
class Recorder implements SubscriberContext, SubscriptionSink {
  readonly got: PublishedMessage[] = [];
  ended = false;
  cancel: (() => void) | undefined;

  becomeSubscriber(_id: number, cancel: () => void): SubscriptionSink {
    this.cancel = cancel;
    return this;
  }

  deliver(message: PublishedMessage): void {
    this.got.push(message);
  }

  end(): void {
    this.ended = true;
  }
}

function subscribers(pubsub: PubSub, topic: string, n: number): { recorders: Recorder[]; ids: number[] } {
  const recorders = Array.from({ length: n }, () => new Recorder());
  // The local broker answers at once.
  const ids = recorders.map((r) => pubsub.subscribe(topic, r) as number);
  return { recorders, ids };
}

describe('fan-out in slices', () => {
  test('a publish to few subscribers is delivered at once and returns the count', () => {
    const pubsub = new PubSub();
    const { recorders } = subscribers(pubsub, 't', 10);
    assert.equal(pubsub.publish('t', text('a')), 10);
    assert.ok(recorders.every((r) => r.got.length === 1));
    assert.equal(pubsub.publish('nobody', text('a')), 0);
  });

  test('a publish to many is handed out a slice per turn; everyone gets every message once, in order, shared', async () => {
    const pubsub = new PubSub();
    const n = 3 * FANOUT_SLICE + 17;
    const { recorders } = subscribers(pubsub, 't', n);
    const first = pubsub.publish('t', text('m1'));
    assert.ok(isPromise(first), 'the publisher learns the count once every subscriber has the message');
    assert.equal(recorders.filter((r) => r.got.length === 1).length, FANOUT_SLICE, 'one slice at once');
    const second = pubsub.publish('t', text('m2'));
    assert.equal(recorders.filter((r) => r.got.length === 2).length, 0, 'a later message waits for the earlier one');
    assert.deepEqual(await Promise.all([first, second]), [n, n]);
    for (const r of recorders) assert.deepEqual(r.got.map(textOf), ['m1', 'm2']);
    assert.ok(recorders.every((r) => r.got[0] === recorders[0]!.got[0]), 'one message object for every subscriber');
  });

  test('only subscribers present at publish time get it; one leaving mid-fan-out is skipped', async () => {
    const pubsub = new PubSub();
    const { recorders } = subscribers(pubsub, 't', 2 * FANOUT_SLICE + 1);
    const published = pubsub.publish('t', text('m'));
    const late = new Recorder();
    void pubsub.subscribe('t', late);
    const leaving = recorders[recorders.length - 1]!;
    leaving.cancel!();
    await published;
    assert.equal(late.got.length, 0, 'a subscriber that came after the publish does not get it');
    assert.equal(leaving.got.length, 0, 'a subscriber gone before its turn is skipped');
    assert.equal(recorders.filter((r) => r.got.length === 1).length, recorders.length - 1);
  });

  test('UNSUBSCRIBE in the middle of a fan-out still hands over what was published before it', async () => {
    const pubsub = new PubSub();
    const { recorders, ids } = subscribers(pubsub, 't', 2 * FANOUT_SLICE + 1);
    const published = pubsub.publish('t', text('before'));
    const last = recorders.length - 1;
    assert.equal(recorders[last]!.got.length, 0);
    assert.equal(pubsub.unsubscribe('t', ids[last]!), true);
    assert.deepEqual(recorders[last]!.got.map(textOf), ['before']);
    assert.equal(recorders[last]!.ended, true);
    await published;
    assert.equal(recorders[last]!.got.length, 1, 'and only once');
  });

  test('topics take turns, and departed subscribers are forgotten', async () => {
    const pubsub = new PubSub();
    const a = subscribers(pubsub, 'a', 2 * FANOUT_SLICE);
    const b = subscribers(pubsub, 'b', 2 * FANOUT_SLICE);
    await Promise.all([pubsub.publish('a', text('x')), pubsub.publish('b', text('y'))]);
    assert.ok([...a.recorders, ...b.recorders].every((r) => r.got.length === 1));
    for (const r of [...a.recorders, ...b.recorders]) r.cancel!();
    assert.equal(pubsub.size, 0);
    assert.equal(pubsub.publish('a', text('z')), 0);
  });
});

describe('a published message is one shared frame', () => {
  test('the first subscriber stream encodes it, the others reuse those bytes', async () => {
    const running = await startServer();
    try {
      const kv = await running.client();
      const subs = await Promise.all(Array.from({ length: 5 }, () => kv.subscribe('shared')));
      // A recorder subscribed last sees the message object after every stream has queued it.
      const recorder = new Recorder();
      void running.service.pubsub.subscribe('shared', recorder);
      const received = Promise.all(subs.map(async (s) => (await s[Symbol.asyncIterator]().next()).value as unknown));
      await kv.publish('shared', 'x'.repeat(5000));
      assert.deepEqual(await received, Array(5).fill(['x'.repeat(5000)]));
      const encoded = recorder.got[0]!.encoded;
      assert.ok(Array.isArray(encoded) && encoded.length === 1, 'encoded once, as one frame, by the first stream');
      await kv.close();
    } finally {
      await running.close();
    }
  });
});
