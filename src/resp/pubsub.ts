/**
 * The bridge between RESP clients and protokv's pub/sub: a RESP channel is a protokv topic, so
 * RESP and protobuf subscribers receive each other's messages.
 *
 * Each channel (or pattern) a RESP client subscribes to is one subscription in the service's
 * pub/sub, with a {@link RespSubscription} as its sink. A published message carries a list of
 * values: a RESP subscriber receives one `message` per value (one empty message when there are
 * none), each rendered as bytes (values.ts). The RESP encoding of a channel message is built once
 * per publish and protocol version and shared by every RESP subscriber.
 */
import type { PublishedMessage, SubscriberContext, SubscriptionSink, TopicMatcher } from '../service/pubsub.js';
import type { ClientState } from './client.js';
import { Glob } from './glob.js';
import { encodeName } from './names.js';
import { ReplyWriter } from './reply.js';

/** One channel or pattern subscription of a RESP client. */
export class RespSubscription implements SubscriberContext, SubscriptionSink {
  /** The service's id for it, once subscribed. */
  id = 0;
  #cancel: (() => void) | undefined;
  #ended = false;

  constructor(
    readonly client: ClientState,
    /** The channel or pattern, as a protokv name. */
    readonly name: string,
    readonly kind: 'channel' | 'pattern',
  ) {}

  becomeSubscriber(id: number, cancel: () => void): SubscriptionSink {
    this.id = id;
    this.#cancel = cancel;
    return this;
  }

  deliver(message: PublishedMessage): void {
    if (this.#ended) return;
    const client = this.client;
    if (this.kind === 'channel') {
      const protocol = client.protocol;
      let bytes = protocol === 2 ? message.resp2 : message.resp3;
      if (bytes === undefined) {
        bytes = renderMessages(message, protocol, undefined);
        if (protocol === 2) message.resp2 = bytes;
        else message.resp3 = bytes;
      }
      client.deliver(bytes);
      return;
    }
    client.deliver((out) => writeMessages(out, message, this.name));
  }

  /**
   * The service ended the subscription (a protobuf UNSUBSCRIBE naming its id, or shutdown): the
   * client forgets it and is told, as Redis tells a client whose subscription the server ended.
   */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#cancel = undefined;
    const map = this.kind === 'channel' ? this.client.channels : this.client.patterns;
    if (map.get(this.name) === this) map.delete(this.name);
    const client = this.client;
    if (client.closing) return;
    client.deliver((out) => {
      out.push(3);
      out.bulkString(this.kind === 'channel' ? 'unsubscribe' : 'punsubscribe');
      out.bulkName(this.name);
      out.integer(client.channels.size + client.patterns.size);
    });
  }

  /** The client is unsubscribing itself: the service's end notice is not passed on. */
  quiet(): void {
    this.#ended = true;
  }

  /** Forgets the subscription at once without telling the client (its connection is gone). */
  cancel(): void {
    this.#ended = true;
    const cancel = this.#cancel;
    this.#cancel = undefined;
    cancel?.();
  }

  /** Whether the service still delivers to it. */
  get active(): boolean {
    return !this.#ended;
  }
}

/** A PSUBSCRIBE pattern, matched on the bytes of topics as Redis matches channel names. */
export class PatternMatcher implements TopicMatcher {
  readonly #glob: Glob;

  constructor(readonly pattern: string) {
    this.#glob = new Glob(encodeName(pattern));
  }

  matches(topic: string): boolean {
    return this.#glob.test(topicBytes(topic));
  }
}

// Every pattern subscription tests the same topic during one publish: encode it once.
let lastTopic: string | undefined;
let lastTopicBytes: Buffer = Buffer.alloc(0);

function topicBytes(topic: string): Buffer {
  if (topic !== lastTopic) {
    lastTopicBytes = encodeName(topic);
    lastTopic = topic;
  }
  return lastTopicBytes;
}

/** The `message` (or, with `pattern`, `pmessage`) pushes for one published message. */
function writeMessages(out: ReplyWriter, message: PublishedMessage, pattern: string | undefined): void {
  const values = message.response.values;
  const count = values.length === 0 ? 1 : values.length;
  for (let i = 0; i < count; i++) {
    if (pattern === undefined) {
      out.push(3);
      out.raw(MESSAGE);
    } else {
      out.push(4);
      out.raw(PMESSAGE);
      out.bulkName(pattern);
    }
    out.bulkName(message.topic);
    out.bulkValue(values.length === 0 ? EMPTY : values[i]);
  }
}

function renderMessages(message: PublishedMessage, protocol: 2 | 3, pattern: string | undefined): Buffer {
  const out = new ReplyWriter();
  out.protocol = protocol;
  writeMessages(out, message, pattern);
  const parts = out.take();
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}

const MESSAGE = Buffer.from('$7\r\nmessage\r\n');
const PMESSAGE = Buffer.from('$8\r\npmessage\r\n');
const EMPTY = { value: undefined };
