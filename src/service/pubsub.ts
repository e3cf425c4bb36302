/**
 * Topics and their subscribers. A published message is framed once and the same bytes go to
 * every subscriber; each subscriber's stream bounds its own backlog (see `SubscriberContext`).
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
 * encoding of it in `encoded` so it is encoded once per publish, not once per subscriber.
 */
export class PublishedMessage {
  readonly response;
  encoded: Buffer | undefined;

  constructor(data: Value[]) {
    this.response = okValues(data);
  }
}

interface Subscription {
  readonly id: number;
  readonly topic: string;
  readonly sink: SubscriptionSink;
}

export class PubSub {
  readonly #topics = new Map<string, Map<number, Subscription>>();
  readonly #byId = new Map<number, Subscription>();
  #lastId = 0;
  /** Messages published since start (with or without subscribers), for metrics. */
  published = 0;
  /** Messages handed to subscribers since start: one per subscriber reached, for metrics. */
  delivered = 0;

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

  /** Ends subscription `id` if it is on `topic`; its stream is closed. False when there is no such subscription. */
  unsubscribe(topic: string, id: number): boolean {
    const sub = this.#byId.get(id);
    if (sub === undefined || sub.topic !== topic) return false;
    this.#remove(id);
    sub.sink.end();
    return true;
  }

  /** Sends `data` to every current subscriber of `topic`, in publish order; returns how many. */
  publish(topic: string, data: Value[]): number {
    this.published++;
    const subs = this.#topics.get(topic);
    if (subs === undefined) return 0;
    const message = new PublishedMessage(data);
    // Copy first: a sink may cancel its own subscription while we deliver.
    const targets = Array.from(subs.values());
    for (const sub of targets) sub.sink.deliver(message);
    this.delivered += targets.length;
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
    const subs = this.#topics.get(sub.topic);
    subs?.delete(id);
    if (subs?.size === 0) this.#topics.delete(sub.topic);
  }
}
