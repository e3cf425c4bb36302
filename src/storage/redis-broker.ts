/**
 * Pub/sub across protokv nodes through Redis sharded pub/sub (SPUBLISH / SSUBSCRIBE), for nodes
 * sharing a Redis store.
 *
 * - A topic is one sharded channel (redis-layout.ts). A node subscribes to it once, while it has
 *   subscribers of the topic, and fans each message out to them itself.
 * - PUBLISH is one script: SPUBLISH to the channel. Every node — the publishing one included —
 *   gets the message from Redis, so all of them see the messages of a topic in the one order the
 *   channel's master gave them.
 * - Subscription ids come from a counter in Redis, a block of {@link ID_BLOCK} at a time, so they
 *   are unique across nodes and a SUBSCRIBE needs no extra round trip.
 * - Each topic has a hash of its live subscriptions (id → node), next to its channel. UNSUBSCRIBE
 *   of an id that lives on another node is one script: it removes the id from the hash and sends
 *   an "end id" message on the topic's channel, which the owning node acts on.
 *
 * Messages travel as protobuf: a publish as a `CommandRequest` holding `Publish { data }`, an end
 * as one holding `Unsubscribe { id }`.
 *
 * Like Redis pub/sub itself, delivery is at most once: a node cut off from a channel's master
 * (failover, network) misses what is published meanwhile, and ioredis subscribes again when it
 * reconnects. A node that dies without unsubscribing leaves its ids in the topic's hash; they
 * only inflate the count PUBLISH reports, and an UNSUBSCRIBE of one answers 200.
 */
import { Cluster } from 'ioredis';
import type { Redis } from 'ioredis';
import { CommandRequest, type Value } from '../protocol/generated/abi.js';
import { decodeCommandRequest } from '../protocol/decoder.js';
import { errors } from '../errors.js';
import type { Broker, BrokerTarget } from '../service/broker.js';
import type { MaybePromise } from './store.js';
import type { RedisEngine } from './redis-engine.js';
import { RedisLayout } from './redis-layout.js';

/** Subscription ids taken from Redis at once. */
const ID_BLOCK = 4096;
/** Unsubscribe and Unsubscribe.id are uint32 on the wire. */
const MAX_ID = 0xffff_ffff;

interface TopicState {
  /** Subscriptions to the topic on this node. */
  count: number;
  /** Settles once the node receives the topic's messages. */
  readonly joined: Promise<void>;
}

export class RedisBroker implements Broker {
  readonly #engine: RedisEngine;
  readonly #layout: RedisLayout;
  /** The connection that receives messages: the cluster client itself, or a dedicated one. */
  readonly #subscriber: Redis | Cluster;
  readonly #topics = new Map<string, TopicState>();
  #target: BrokerTarget | undefined;
  /** This node's id, recorded next to each of its subscriptions. */
  readonly #nodeId: number;
  /** The ids left in the current block: `#nextId` to `#lastId`. */
  #nextId: number;
  #lastId: number;
  /** The last id of the block taken in advance, if any. */
  #spare: number | undefined;
  #refilling: Promise<void> | undefined;
  #closed = false;

  private constructor(engine: RedisEngine, subscriber: Redis | Cluster, block: number) {
    this.#engine = engine;
    this.#layout = new RedisLayout(engine.target.prefix);
    this.#subscriber = subscriber;
    this.#nodeId = block - ID_BLOCK + 1;
    this.#nextId = this.#nodeId + 1;
    this.#lastId = block;
    subscriber.on('smessageBuffer', this.#onMessage);
  }

  /** Takes the first block of ids and opens the connection messages arrive on. */
  static async start(engine: RedisEngine): Promise<RedisBroker> {
    const block = await takeBlock(engine);
    const client = engine.client;
    let subscriber: Redis | Cluster;
    if (client instanceof Cluster) subscriber = client;
    else {
      // A subscribed connection can do nothing else; ioredis subscribes it again on reconnect.
      subscriber = client.duplicate({ connectionName: 'protokv-subscriber', lazyConnect: true });
      subscriber.on('error', (err: Error) => engine.logger.debug({ err: err.message }, 'redis subscriber error'));
      try {
        await engine.guard(subscriber.connect());
      } catch (err) {
        subscriber.disconnect();
        throw err;
      }
    }
    return new RedisBroker(engine, subscriber, block);
  }

  attach(target: BrokerTarget): void {
    this.#target = target;
  }

  nextId(): number {
    if (this.#nextId > this.#lastId) {
      if (this.#spare === undefined) {
        this.#refill();
        throw errors.storeUnavailable('has handed out no subscription ids yet; try again');
      }
      this.#nextId = this.#spare - ID_BLOCK + 1;
      this.#lastId = this.#spare;
      this.#spare = undefined;
    }
    const id = this.#nextId++;
    // Take the next block while half of this one is left.
    if (this.#spare === undefined && this.#lastId - this.#nextId < ID_BLOCK / 2) this.#refill();
    return id;
  }

  joined(topic: string, id: number): Promise<void> {
    let state = this.#topics.get(topic);
    if (state === undefined) {
      const channel = this.#layout.topicChannel(topic);
      const joined = this.#engine.guard(this.#subscriber.ssubscribe(channel)).then(() => undefined);
      state = { count: 0, joined };
      this.#topics.set(topic, state);
      const failed = state;
      // Let the next subscriber try again rather than share this failure.
      joined.catch(() => {
        if (this.#topics.get(topic) === failed && failed.count === 0) this.#topics.delete(topic);
      });
    }
    state.count++;
    const registered = this.#engine.guard(this.#engine.client.hset(this.#layout.topicSubscriptions(topic), id, this.#nodeId));
    return Promise.all([state.joined, registered]).then(() => undefined);
  }

  left(topic: string, id: number): void {
    this.#background(this.#engine.client.hdel(this.#layout.topicSubscriptions(topic), String(id)), 'forget a subscription');
    const state = this.#topics.get(topic);
    if (state === undefined || --state.count > 0) return;
    this.#topics.delete(topic);
    if (!this.#closed) this.#background(this.#subscriber.sunsubscribe(this.#layout.topicChannel(topic)), 'leave a channel');
  }

  publish(topic: string, data: Value[]): Promise<number> {
    this.#engine.assertConnected();
    const message = encode({ requestData: { $case: 'publish', value: { topic: '', data } } });
    return this.#engine.guard(
      this.#engine.client.protokvPublish(this.#layout.topicChannel(topic), this.#layout.topicSubscriptions(topic), message),
    );
  }

  unsubscribeElsewhere(topic: string, id: number): MaybePromise<boolean> {
    this.#engine.assertConnected();
    const message = encode({ requestData: { $case: 'unsubscribe', value: { topic: '', id } } });
    return this.#engine
      .guard(this.#engine.client.protokvUnsubscribe(this.#layout.topicChannel(topic), this.#layout.topicSubscriptions(topic), id, message))
      .then((removed) => removed === 1);
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#subscriber.off('smessageBuffer', this.#onMessage);
    const channels = [...this.#topics.keys()].map((topic) => this.#layout.topicChannel(topic));
    this.#topics.clear();
    if (this.#subscriber === this.#engine.client) {
      for (const channel of channels) this.#background(this.#subscriber.sunsubscribe(channel), 'leave a channel');
    } else this.#subscriber.disconnect();
    return Promise.resolve();
  }

  readonly #onMessage = (channel: Buffer, message: Buffer): void => {
    const topic = this.#layout.topicOf(channel.toString('utf8'));
    if (topic === undefined || !this.#topics.has(topic) || this.#target === undefined) return;
    let request: CommandRequest;
    try {
      request = decodeCommandRequest(message);
    } catch (err) {
      this.#engine.logger.warn({ topic, err: (err as Error).message }, 'ignored a malformed message on a topic channel');
      return;
    }
    const data = request.requestData;
    if (data?.$case === 'publish') void this.#target.deliver(topic, data.value.data);
    else if (data?.$case === 'unsubscribe') this.#target.end(topic, data.value.id);
  };

  #refill(): void {
    if (this.#refilling !== undefined) return;
    this.#refilling = takeBlock(this.#engine).then(
      (block) => {
        this.#refilling = undefined;
        this.#spare = block;
      },
      (err: unknown) => {
        this.#refilling = undefined;
        this.#engine.logger.warn({ err: (err as Error).message }, 'could not take subscription ids from the store');
      },
    );
  }

  #background(request: Promise<unknown>, what: string): void {
    this.#engine.guard(request).catch((err: unknown) => this.#engine.logger.debug({ err: (err as Error).message }, `could not ${what}`));
  }
}

/** Takes a block of ids; resolves to its last one. */
async function takeBlock(engine: RedisEngine): Promise<number> {
  const last = await engine.guard(engine.client.incrby(new RedisLayout(engine.target.prefix).idsKey, ID_BLOCK));
  if (last > MAX_ID) throw errors.storeUnavailable(`has handed out every subscription id (the counter is past ${MAX_ID})`);
  return last;
}

function encode(request: CommandRequest): Buffer {
  const bytes = CommandRequest.encode(request).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
