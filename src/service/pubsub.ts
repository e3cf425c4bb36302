/**
 * Topics and their subscribers. A published message is framed once and the same bytes go to
 * every subscriber; each subscriber's stream bounds its own backlog (see `SubscriberContext`).
 *
 * Besides subscriptions to one topic there are pattern subscriptions (the RESP listener's
 * PSUBSCRIBE): a publish reaches every subscription whose matcher accepts its topic, whichever
 * protocol published it.
 */
import type { Value } from '../protocol/generated/abi.js';
import { okValues } from '../protocol/requests.js';

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
  #lastId = 0;

  /** Number of live subscriptions. */
  get size(): number {
    return this.#byId.size;
  }

  /** Registers a subscriber for `topic`; returns its id, unique for the life of the process. */
  subscribe(topic: string, stream: SubscriberContext): number {
    const id = ++this.#lastId;
    const sink = stream.becomeSubscriber(id, () => this.#remove(id));
    const sub: Subscription = { id, topic, sink };
    this.#byId.set(id, sub);
    let subs = this.#topics.get(topic);
    if (subs === undefined) this.#topics.set(topic, (subs = new Map<number, Subscription>()));
    subs.set(id, sub);
    return id;
  }

  /**
   * Registers a pattern subscription: it receives every message whose topic `matcher` accepts.
   * Returns its id (from the same sequence as topic subscriptions).
   */
  subscribePattern(matcher: TopicMatcher, stream: SubscriberContext): number {
    const id = ++this.#lastId;
    const sink = stream.becomeSubscriber(id, () => this.#remove(id));
    const sub: Subscription = { id, topic: matcher.pattern, sink, matcher };
    this.#byId.set(id, sub);
    this.#patterns.set(id, sub);
    this.#patternCounts.set(matcher.pattern, (this.#patternCounts.get(matcher.pattern) ?? 0) + 1);
    return id;
  }

  /** Ends subscription `id` if it is on `topic`; its stream is closed. False when there is no such subscription. */
  unsubscribe(topic: string, id: number): boolean {
    const sub = this.#byId.get(id);
    if (sub === undefined || sub.topic !== topic || sub.matcher !== undefined) return false;
    this.#remove(id);
    sub.sink.end();
    return true;
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
   * Sends `data` to every current subscriber of `topic` and every pattern subscription matching
   * it, in publish order; returns how many subscriptions received it.
   */
  publish(topic: string, data: Value[]): number {
    const subs = this.#topics.get(topic);
    if (subs === undefined && this.#patterns.size === 0) return 0;
    // Copy first: a sink may cancel its own subscription (or another) while we deliver.
    const targets = subs === undefined ? [] : Array.from(subs.values());
    for (const sub of this.#patterns.values()) if (sub.matcher!.matches(topic)) targets.push(sub);
    if (targets.length === 0) return 0;
    const message = new PublishedMessage(topic, data);
    for (const sub of targets) sub.sink.deliver(message);
    return targets.length;
  }

  /** How many subscriptions a publish to `topic` would reach now. */
  receivers(topic: string): number {
    let n = this.#topics.get(topic)?.size ?? 0;
    for (const sub of this.#patterns.values()) if (sub.matcher!.matches(topic)) n++;
    return n;
  }

  /** Subscriptions to exactly `topic` (pattern subscriptions not counted). */
  subscriberCount(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /** Topics with at least one subscriber. */
  topics(): IterableIterator<string> {
    return this.#topics.keys();
  }

  /** Number of topics with at least one subscriber. */
  get topicCount(): number {
    return this.#topics.size;
  }

  /** Number of distinct patterns subscribed to. */
  get patternCount(): number {
    return this.#patternCounts.size;
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
    const subs = this.#topics.get(sub.topic);
    subs?.delete(id);
    if (subs?.size === 0) this.#topics.delete(sub.topic);
  }
}
