/**
 * How published messages travel. `PubSub` keeps this node's subscriptions and fans messages out
 * to them; a broker decides where a published message goes before that, and where subscription
 * ids come from:
 * - the {@link LocalBroker} (the default) hands each message straight back to this node;
 * - the Redis broker (storage/redis-broker.ts) sends it through Redis sharded pub/sub to every
 *   protokv node with subscribers of the topic, this one included, so that all of them see one
 *   order per topic, and allocates ids that are unique across nodes.
 */
import type { Value } from '../protocol/generated/abi.js';
import type { MaybePromise } from '../storage/store.js';

/** What a broker calls back into: this node's subscriptions. */
export interface BrokerTarget {
  /** Hands a message published to `topic` to this node's subscribers of it; returns how many. */
  deliver(topic: string, data: Value[]): MaybePromise<number>;
  /** Ends this node's subscription `id` on `topic` (asked from elsewhere); false when there is none. */
  end(topic: string, id: number): boolean;
}

export interface Broker {
  /** Called once, by the PubSub the broker serves. */
  attach(target: BrokerTarget): void;
  /**
   * A new subscription id, greater than 0 and unique wherever this broker's subscriptions live.
   * Synchronous, so a stream becomes a subscription at once; throws when none is available.
   */
  nextId(): number;
  /**
   * Subscription `id` to `topic` now exists on this node. Resolves once messages published
   * afterwards reach it; a rejection means the subscription could not be set up.
   */
  joined(topic: string, id: number): MaybePromise<void>;
  /** Subscription `id` to `topic` has ended on this node. */
  left(topic: string, id: number): void;
  /** Publishes `data` to `topic`; resolves to the number of subscriptions it was sent to. */
  publish(topic: string, data: Value[]): MaybePromise<number>;
  /** Ends subscription `id` to `topic` that lives on another node; false when there is none. */
  unsubscribeElsewhere(topic: string, id: number): MaybePromise<boolean>;
  /** Stops receiving messages. */
  close(): Promise<void>;
}

/** Messages stay in this process: published, they go straight to its subscribers. */
export class LocalBroker implements Broker {
  #target: BrokerTarget | undefined;
  #lastId = 0;

  attach(target: BrokerTarget): void {
    this.#target = target;
  }

  nextId(): number {
    return ++this.#lastId;
  }

  joined(): void {}

  left(): void {}

  publish(topic: string, data: Value[]): MaybePromise<number> {
    return this.#target?.deliver(topic, data) ?? 0;
  }

  unsubscribeElsewhere(): boolean {
    return false;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
