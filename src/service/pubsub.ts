/**
 * Topics and this node's subscribers. A broker (see broker.ts) decides where a published
 * message goes and where subscription ids come from; `deliver` fans a message out here.
 *
 * A published message is one object shared by every subscriber, and transports share one
 * encoding of it (`PublishedMessage.encoded`), so a message held by many slow subscribers costs
 * its bytes once. Each subscriber's stream bounds its own backlog (see `SubscriptionSink`).
 *
 * Fan-out is done in slices: at most `FANOUT_SLICE` subscribers are handed messages per turn of
 * the event loop, over all publishes and topics, so neither a publish to a hundred thousand
 * subscribers nor a flood of publishes to a crowded topic holds up other clients.
 * Messages of one topic reach each subscriber in publish order whatever the slicing: a message
 * waits until the ones before it have been handed to every subscriber.
 *
 * Besides subscriptions to one topic there are pattern subscriptions (the RESP listener's
 * PSUBSCRIBE): every message published through this node to a topic the pattern matches reaches
 * them, whichever protocol published it. They are this node's own: with a distributed broker,
 * messages published through other nodes do not reach them.
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

/** Subscribers handed a message per turn of the event loop, over all publishes and topics. */
export const FANOUT_SLICE = 1024;

/**
 * One published message. `response` is shared by every subscriber; transports cache their
 * encoding of it (`encoded` for protobuf frames — pieces of one frame, or a promise of them
 * while it is being compressed — and `resp2`/`resp3` for RESP messages) so it is encoded once
 * per publish, not once per subscriber, and every subscriber queues the same bytes.
 */
export class PublishedMessage {
  readonly response;
  encoded: readonly Buffer[] | Promise<readonly Buffer[]> | undefined;
  resp2: Buffer | undefined;
  resp3: Buffer | undefined;

  constructor(
    /** The topic it was published to (pattern subscribers need it). */
    readonly topic: string,
    data: Value[],
  ) {
    this.response = okValues(data);
  }
}

/** Decides which topics a pattern subscription receives. */
export interface TopicMatcher {
  /** The pattern as its subscriber wrote it. */
  readonly pattern: string;
  matches(topic: string): boolean;
}

interface Subscription {
  readonly id: number;
  /** The topic, or the pattern of a pattern subscription. */
  readonly topic: string;
  readonly sink: SubscriptionSink;
  /** Set for pattern subscriptions. */
  readonly matcher?: TopicMatcher;
  /** The topic's subscribers, for a subscription to one topic. */
  readonly room?: Topic;
  /** Index in `room.slots`. */
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

/** One topic's subscribers and the messages on their way to them. */
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
  readonly #patterns = new Map<number, Subscription>();
  /** Pattern subscriptions per distinct pattern. */
  readonly #patternCounts = new Map<string, number>();
  readonly #byId = new Map<number, Subscription>();
  /** Topics with pending deliveries, served in turn by `#pump`. */
  readonly #busy = new Set<Topic>();
  #pumpScheduled = false;
  /** Deliveries left for this turn of the event loop; `#pump` refills it. */
  #budget = FANOUT_SLICE;
  /** Where published messages go and where ids come from (see broker.ts). */
  readonly #broker: Broker;
  /** Messages published on this node since start (with or without subscribers), for metrics. */
  published = 0;
  /** Messages handed to this node's subscribers since start: one per subscription reached, for metrics. */
  delivered = 0;

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
    let room = this.#topics.get(topic);
    if (room === undefined) this.#topics.set(topic, (room = new Topic(topic)));
    const sub: Subscription = { id, topic, sink, room, slot: room.slots.length };
    room.slots.push(sub);
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
   * Registers a pattern subscription on this node: it receives every message published through
   * this node whose topic `matcher` accepts. Returns its id (from the same sequence as topic
   * subscriptions).
   */
  subscribePattern(matcher: TopicMatcher, stream: SubscriberContext): number {
    const id = this.#broker.nextId();
    const sink = stream.becomeSubscriber(id, () => this.#remove(id));
    const sub: Subscription = { id, topic: matcher.pattern, sink, matcher, slot: -1 };
    this.#byId.set(id, sub);
    this.#patterns.set(id, sub);
    this.#patternCounts.set(matcher.pattern, (this.#patternCounts.get(matcher.pattern) ?? 0) + 1);
    return id;
  }

  /** Ends pattern subscription `id` (its sink is told, as for `unsubscribe`). False when there is none. */
  unsubscribePattern(id: number): boolean {
    const sub = this.#patterns.get(id);
    if (sub === undefined) return false;
    this.#remove(id);
    sub.sink.end();
    return true;
  }

  /**
   * Ends subscription `id` if it is on `topic`, here or (with a distributed broker) on another
   * node; its stream is closed once it has been sent every message published before. False when
   * there is no such subscription.
   */
  unsubscribe(topic: string, id: number): MaybePromise<boolean> {
    return this.#end(topic, id) || this.#broker.unsubscribeElsewhere(topic, id);
  }

  /**
   * Publishes `data` to `topic` through the broker, then to this node's matching pattern
   * subscriptions; resolves to the number of subscriptions reached.
   */
  publish(topic: string, data: Value[]): MaybePromise<number> {
    this.published++;
    const sent = this.#broker.publish(topic, data);
    if (this.#patterns.size === 0) return sent;
    const matched: Subscription[] = [];
    for (const sub of this.#patterns.values()) if (sub.matcher!.matches(topic)) matched.push(sub);
    if (matched.length === 0) return sent;
    const message = new PublishedMessage(topic, data);
    for (const sub of matched) sub.sink.deliver(message);
    this.delivered += matched.length;
    return isPromise(sent) ? sent.then((n) => n + matched.length) : sent + matched.length;
  }

  /** Subscriptions to exactly `topic` on this node (pattern subscriptions not counted). */
  subscriberCount(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /** Topics with at least one subscriber on this node. */
  *topics(): IterableIterator<string> {
    for (const room of this.#topics.values()) if (room.size > 0) yield room.name;
  }

  /** Number of topics with at least one subscriber on this node. */
  get topicCount(): number {
    let n = 0;
    for (const room of this.#topics.values()) if (room.size > 0) n++;
    return n;
  }

  /** Number of distinct patterns subscribed to on this node. */
  get patternCount(): number {
    return this.#patternCounts.size;
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
    const room = this.#topics.get(topic);
    if (room === undefined) return 0;
    const receivers = room.size;
    this.delivered += receivers;
    const delivery: Delivery = { message: new PublishedMessage(topic, data), end: room.slots.length, next: 0 };
    if (room.pending.length === 0 && this.#budget > 0) {
      this.#budget = this.#deliver(room, delivery, this.#budget);
      this.#schedulePump();
      if (delivery.next >= delivery.end) return receivers;
    }
    room.pending.push(delivery);
    this.#busy.add(room);
    this.#schedulePump();
    return new Promise((resolve) => (delivery.done = () => resolve(receivers)));
  }

  /** Ends every subscription (server shutdown). */
  endAll(): void {
    for (const sub of Array.from(this.#byId.values())) {
      this.#remove(sub.id);
      sub.sink.end();
    }
    for (const room of this.#busy) for (const d of room.pending.splice(0)) d.done?.();
    this.#busy.clear();
  }

  /** Ends this node's subscription `id` if it is on `topic`, after handing it what was published before. */
  #end(topic: string, id: number): boolean {
    const sub = this.#byId.get(id);
    if (sub === undefined || sub.topic !== topic || sub.room === undefined) return false;
    // Messages published before the unsubscribe that the fan-out has not reached yet go first.
    for (const d of sub.room.pending) if (sub.slot >= d.next && sub.slot < d.end) sub.sink.deliver(d.message);
    this.#remove(id);
    sub.sink.end();
    return true;
  }

  /** Hands `delivery` to at most `budget` more subscribers; returns the budget left. */
  #deliver(room: Topic, delivery: Delivery, budget: number): number {
    const slots = room.slots;
    room.walking = true;
    try {
      while (delivery.next < delivery.end && budget > 0) {
        const sub = slots[delivery.next++];
        budget--;
        if (sub !== undefined) sub.sink.deliver(delivery.message);
      }
    } finally {
      room.walking = false;
    }
    // Subscribers that left during the walk could not be tidied away then.
    this.#tidy(room);
    return budget;
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(this.#pump);
  }

  /** Each turn of the event loop: refills the budget and spends it on pending fan-outs, topics taking turns. */
  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    let budget = FANOUT_SLICE;
    for (const room of Array.from(this.#busy)) {
      if (budget === 0) break;
      // To the back of the line, so the next slice starts with another topic.
      this.#busy.delete(room);
      while (budget > 0 && room.pending.length > 0) {
        const d = room.pending[0];
        budget = this.#deliver(room, d, budget);
        if (d.next < d.end) break;
        room.pending.shift();
        d.done?.();
      }
      if (room.pending.length > 0) this.#busy.add(room);
      else this.#tidy(room);
    }
    // What is left may be spent by publishes arriving during this turn; refilled on the next.
    this.#budget = budget;
    if (this.#busy.size > 0 || budget < FANOUT_SLICE) this.#schedulePump();
  };

  #remove(id: number): void {
    const sub = this.#byId.get(id);
    if (sub === undefined) return;
    this.#byId.delete(id);
    if (sub.matcher !== undefined) {
      this.#patterns.delete(id);
      const left = (this.#patternCounts.get(sub.topic) ?? 1) - 1;
      if (left === 0) this.#patternCounts.delete(sub.topic);
      else this.#patternCounts.set(sub.topic, left);
      return;
    }
    this.#broker.left(sub.topic, id);
    const room = sub.room!;
    room.slots[sub.slot] = undefined;
    room.holes++;
    this.#tidy(room);
  }

  /** Forgets an empty topic, or closes the holes of a sparse one, when no delivery depends on indexes. */
  #tidy(room: Topic): void {
    if (room.pending.length > 0 || room.walking) return;
    if (room.size === 0) {
      if (this.#topics.get(room.name) === room) this.#topics.delete(room.name);
      room.slots = [];
      room.holes = 0;
      return;
    }
    if (room.holes < 64 || room.holes * 2 < room.slots.length) return;
    const live = room.slots.filter((s): s is Subscription => s !== undefined);
    live.forEach((s, i) => (s.slot = i));
    room.slots = live;
    room.holes = 0;
  }
}
