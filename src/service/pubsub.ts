/**
 * Topics and this node's subscribers. A broker (see broker.ts) decides where a published
 * message goes and where subscription ids come from; `deliver` fans a message out here.
 *
 * A published message is one object shared by every subscriber, and transports share one
 * encoding of it (`PublishedMessage.encoded`), so a message held by many slow subscribers costs
 * its bytes once. Each subscriber's stream bounds its own backlog (see `SubscriptionSink`).
 *
 * Fan-out is done in slices: at most `FANOUT_SLICE` subscribers are handed messages per turn of
 * the event loop, so a publish to a hundred thousand subscribers never holds up other clients.
 * Messages of one topic reach each subscriber in publish order whatever the slicing: a message
 * waits until the ones before it have been handed to every subscriber.
 */
import { setImmediate } from 'node:timers';
import type { Value } from '../protocol/generated/abi.js';
import { okValues } from '../protocol/requests.js';
import { isPromise, type MaybePromise } from '../storage/store.js';
import { LocalBroker, type Broker } from './broker.js';

/** A subscription's stream, as the transport implements it. */
export interface SubscriberContext {
  /**
   * Turns the stream into a subscription stream and returns where its messages go. `cancel`
   * is for the transport to call when the client closes the stream or breaks the protocol, so
   * the subscription is forgotten at once.
   */
  becomeSubscriber(id: number, cancel: () => void): SubscriptionSink;
}

/** Where a subscription's messages go. */
export interface SubscriptionSink {
  /** Queues one message for the subscriber. Must not block; a sink over its backlog disconnects. */
  deliver(message: PublishedMessage): void;
  /** The subscription ended (unsubscribed or shutdown): finish writing, then close the stream. */
  end(): void;
}

/** Subscribers handed a message per turn of the event loop, over all topics. */
export const FANOUT_SLICE = 1024;

/**
 * One published message. `response` is shared by every subscriber; transports cache their
 * encoding of it in `encoded` (pieces of one frame, or a promise of them while it is being
 * compressed) so it is encoded once per publish, not once per subscriber, and every subscriber
 * queues the same bytes.
 */
export class PublishedMessage {
  readonly response;
  encoded: readonly Buffer[] | Promise<readonly Buffer[]> | undefined;

  constructor(data: Value[]) {
    this.response = okValues(data);
  }
}

interface Subscription {
  readonly id: number;
  readonly topic: Topic;
  readonly sink: SubscriptionSink;
  /** Index in `topic.slots`. */
  slot: number;
}

/** A message on its way to the subscribers that were there when it was published. */
interface Delivery {
  readonly message: PublishedMessage;
  /** Subscribers at `slots` indexes below this were there at publish time. */
  readonly end: number;
  /** The next index to hand the message to. */
  next: number;
  /** Resolves the publisher's promise, for a message that could not be delivered at once. */
  done?: () => void;
}

class Topic {
  /** Subscribers in subscription order; a departed one leaves a hole until the next compaction. */
  slots: (Subscription | undefined)[] = [];
  holes = 0;
  /** Messages not yet handed to every subscriber, in publish order. */
  readonly pending: Delivery[] = [];
  /** True while a delivery loop walks `slots`, which must then keep their indexes. */
  walking = false;

  constructor(readonly name: string) {}

  get size(): number {
    return this.slots.length - this.holes;
  }
}

export class PubSub {
  readonly #topics = new Map<string, Topic>();
  readonly #byId = new Map<number, Subscription>();
  /** Topics with pending deliveries, served in turn by `#pump`. */
  readonly #busy = new Set<Topic>();
  #pumpScheduled = false;
  /** Where published messages go and where ids come from (see broker.ts). */
  readonly #broker: Broker;

  constructor(broker: Broker = new LocalBroker()) {
    this.#broker = broker;
    broker.attach({ deliver: (topic, data) => this.deliver(topic, data), end: (topic, id) => this.#end(topic, id) });
  }

  /** Number of live subscriptions. */
  get size(): number {
    return this.#byId.size;
  }

  /**
   * Registers a subscriber for `topic`; returns its id, unique for the life of the process (and
   * across nodes, with a distributed broker), once messages published from now on reach it.
   */
  subscribe(topic: string, stream: SubscriberContext): MaybePromise<number> {
    const id = this.#broker.nextId();
    const sink = stream.becomeSubscriber(id, () => this.#remove(id));
    let t = this.#topics.get(topic);
    if (t === undefined) this.#topics.set(topic, (t = new Topic(topic)));
    const sub: Subscription = { id, topic: t, sink, slot: t.slots.length };
    t.slots.push(sub);
    this.#byId.set(id, sub);
    const joined = this.#broker.joined(topic, id);
    if (!isPromise(joined)) return id;
    return joined.then(
      () => id,
      (err: unknown) => {
        this.#end(topic, id);
        throw err;
      },
    );
  }

  /**
   * Ends subscription `id` if it is on `topic`, here or (with a distributed broker) on another
   * node; its stream is closed once it has been sent every message published before. False when
   * there is no such subscription.
   */
  unsubscribe(topic: string, id: number): MaybePromise<boolean> {
    return this.#end(topic, id) || this.#broker.unsubscribeElsewhere(topic, id);
  }

  /** Publishes `data` to `topic` through the broker; resolves to the number of subscriptions reached. */
  publish(topic: string, data: Value[]): MaybePromise<number> {
    return this.#broker.publish(topic, data);
  }

  /** Ends every subscription, then stops the broker (server shutdown). */
  async close(): Promise<void> {
    this.endAll();
    await this.#broker.close();
  }

  /**
   * Sends `data` to every current subscriber of `topic` on this node, in publish order, and
   * returns how many there were. The broker calls it for each message published to a topic with
   * subscribers here. When the fan-out takes more than one slice, the number comes as a promise
   * that resolves once every one of them has been handed the message.
   */
  deliver(topic: string, data: Value[]): MaybePromise<number> {
    const t = this.#topics.get(topic);
    if (t === undefined) return 0;
    const receivers = t.size;
    const delivery: Delivery = { message: new PublishedMessage(data), end: t.slots.length, next: 0 };
    if (t.pending.length === 0) {
      this.#deliver(t, delivery, FANOUT_SLICE);
      if (delivery.next >= delivery.end) return receivers;
    }
    t.pending.push(delivery);
    this.#busy.add(t);
    this.#schedulePump();
    return new Promise((resolve) => (delivery.done = () => resolve(receivers)));
  }

  /** Ends this node's subscription `id` if it is on `topic`, after handing it what was published before. */
  #end(topic: string, id: number): boolean {
    const sub = this.#byId.get(id);
    if (sub === undefined || sub.topic.name !== topic) return false;
    // Messages published before the unsubscribe that the fan-out has not reached yet go first.
    for (const d of sub.topic.pending) if (sub.slot >= d.next && sub.slot < d.end) sub.sink.deliver(d.message);
    this.#remove(id);
    sub.sink.end();
    return true;
  }

  /** Ends every subscription (server shutdown). */
  endAll(): void {
    for (const sub of Array.from(this.#byId.values())) {
      this.#remove(sub.id);
      sub.sink.end();
    }
    for (const t of this.#busy) for (const d of t.pending.splice(0)) d.done?.();
    this.#busy.clear();
  }

  /** Hands `delivery` to at most `budget` more subscribers; returns the budget left. */
  #deliver(t: Topic, delivery: Delivery, budget: number): number {
    const slots = t.slots;
    t.walking = true;
    try {
      while (delivery.next < delivery.end && budget > 0) {
        const sub = slots[delivery.next++];
        budget--;
        if (sub !== undefined) sub.sink.deliver(delivery.message);
      }
    } finally {
      t.walking = false;
    }
    // Subscribers that left during the walk could not be tidied away then.
    this.#tidy(t);
    return budget;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(this.#pump);
  }

  /** One slice of pending fan-outs, topics taking turns. */
  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    let budget = FANOUT_SLICE;
    for (const t of Array.from(this.#busy)) {
      if (budget === 0) break;
      // To the back of the line, so the next slice starts with another topic.
      this.#busy.delete(t);
      while (budget > 0 && t.pending.length > 0) {
        const d = t.pending[0];
        budget = this.#deliver(t, d, budget);
        if (d.next < d.end) break;
        t.pending.shift();
        d.done?.();
      }
      if (t.pending.length > 0) this.#busy.add(t);
      else this.#tidy(t);
    }
    if (this.#busy.size > 0) this.#schedulePump();
  };

  #remove(id: number): void {
    const sub = this.#byId.get(id);
    if (sub === undefined) return;
    this.#byId.delete(id);
    this.#broker.left(sub.topic.name, id);
    const t = sub.topic;
    t.slots[sub.slot] = undefined;
    t.holes++;
    this.#tidy(t);
  }

  /** Forgets an empty topic, or closes the holes of a sparse one, when no delivery depends on indexes. */
  #tidy(t: Topic): void {
    if (t.pending.length > 0 || t.walking) return;
    if (t.size === 0) {
      if (this.#topics.get(t.name) === t) this.#topics.delete(t.name);
      t.slots = [];
      t.holes = 0;
      return;
    }
    if (t.holes < 64 || t.holes * 2 < t.slots.length) return;
    const live = t.slots.filter((s): s is Subscription => s !== undefined);
    live.forEach((s, i) => (s.slot = i));
    t.slots = live;
    t.holes = 0;
  }
}
