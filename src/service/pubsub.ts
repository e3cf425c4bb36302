/**
 * Topics and their subscribers. A published message is framed once and the same bytes go to
 * every subscriber; each subscriber's stream bounds its own backlog (see `SubscriberContext`).
 *
 * Besides subscriptions to one topic there are pattern subscriptions (the RESP listener's
 * PSUBSCRIBE): every message published through this node to a topic the pattern matches reaches
 * them, whichever protocol published it. They are this node's own: with a distributed broker,
 * messages published through other nodes do not reach them.
 */
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

/**
 * One published message. `response` is shared by every subscriber; transports cache their
 * encoding of it (`encoded` for protobuf frames, `resp2`/`resp3` for RESP messages) so it is
 * encoded once per publish, not once per subscriber.
 */
export class PublishedMessage {
  readonly response;
  encoded: Buffer | undefined;
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
  readonly topic: string;
  readonly sink: SubscriptionSink;
  /** Set for pattern subscriptions (then `topic` is the pattern). */
  readonly matcher?: TopicMatcher;
}

export class PubSub {
  readonly #topics = new Map<string, Map<number, Subscription>>();
  readonly #patterns = new Map<number, Subscription>();
  /** Pattern subscriptions per distinct pattern. */
  readonly #patternCounts = new Map<string, number>();
  readonly #byId = new Map<number, Subscription>();
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
    const sub: Subscription = { id, topic, sink };
    this.#byId.set(id, sub);
    let subs = this.#topics.get(topic);
    if (subs === undefined) this.#topics.set(topic, (subs = new Map<number, Subscription>()));
    subs.set(id, sub);
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
    const sub: Subscription = { id, topic: matcher.pattern, sink, matcher };
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
   * node; its stream is closed. False when there is no such subscription.
   */
  unsubscribe(topic: string, id: number): MaybePromise<boolean> {
    return this.#end(topic, id) || this.#broker.unsubscribeElsewhere(topic, id);
  }

  /**
   * Publishes `data` to `topic` through the broker, then to this node's matching pattern
   * subscriptions; resolves to the number of subscriptions reached.
   */
  publish(topic: string, data: Value[]): MaybePromise<number> {
    const sent = this.#broker.publish(topic, data);
    if (this.#patterns.size === 0) return sent;
    const matched: Subscription[] = [];
    for (const sub of this.#patterns.values()) if (sub.matcher!.matches(topic)) matched.push(sub);
    if (matched.length === 0) return sent;
    const message = new PublishedMessage(topic, data);
    for (const sub of matched) sub.sink.deliver(message);
    return isPromise(sent) ? sent.then((n) => n + matched.length) : sent + matched.length;
  }

  /** Subscriptions to exactly `topic` on this node (pattern subscriptions not counted). */
  subscriberCount(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /** Topics with at least one subscriber on this node. */
  topics(): IterableIterator<string> {
    return this.#topics.keys();
  }

  /** Number of topics with at least one subscriber on this node. */
  get topicCount(): number {
    return this.#topics.size;
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

  /** Ends this node's subscription `id` if it is on `topic`. */
  #end(topic: string, id: number): boolean {
    const sub = this.#byId.get(id);
    if (sub === undefined || sub.topic !== topic || sub.matcher !== undefined) return false;
    this.#remove(id);
    sub.sink.end();
    return true;
  }

  /**
   * Sends `data` to every current subscriber of `topic` on this node, in publish order; returns
   * how many. The broker calls it for each message published to a topic with subscribers here.
   */
  deliver(topic: string, data: Value[]): MaybePromise<number> {
    const subs = this.#topics.get(topic);
    if (subs === undefined) return 0;
    const message = new PublishedMessage(topic, data);
    // Copy first: a sink may cancel its own subscription while we deliver.
    const targets = Array.from(subs.values());
    for (const sub of targets) sub.sink.deliver(message);
    return targets.length;
  }

  /** Ends every subscription (server shutdown). */
  endAll(): void {
    for (const sub of Array.from(this.#byId.values())) {
      this.#remove(sub.id);
      sub.sink.end();
    }
  }

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
    const subs = this.#topics.get(sub.topic);
    subs?.delete(id);
    if (subs?.size === 0) this.#topics.delete(sub.topic);
  }
}
