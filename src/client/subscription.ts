/**
 * A subscription as an async iterable: `for await (const message of sub)` yields each published
 * message as an array of JavaScript values. Leaving the loop early unsubscribes. Messages wait in
 * a bounded buffer; when it is full the stream stops being read, so a slow consumer pushes back
 * on the server (which disconnects it past its backlog) instead of growing this process.
 */
import type { CommandResponse } from '../protocol/generated/abi.js';
import { fromValue, type KvValue } from '../protocol/values.js';
import type { Channel } from './channel.js';
import { ProtokvError } from './errors.js';

const BUFFER_HIGH_WATER = 1024;

export class Subscription implements AsyncIterable<KvValue[]> {
  /** The server-assigned subscription id (> 0). */
  readonly id: number;
  readonly topic: string;
  /** Resolves when the subscription has ended, for whatever reason. */
  readonly closed: Promise<void>;
  readonly #channel: Channel;
  readonly #unsubscribe: (sub: Subscription) => Promise<void>;
  readonly #buffer: KvValue[][] = [];
  #waiter: ((r: IteratorResult<KvValue[]>) => void) | undefined;
  #failWaiter: ((err: Error) => void) | undefined;
  #done = false;
  #unsubscribing: Promise<void> | undefined;
  #error: Error | undefined;

  /** @internal Created by `KvClient.subscribe`. */
  constructor(id: number, topic: string, channel: Channel, unsubscribe: (sub: Subscription) => Promise<void>) {
    this.id = id;
    this.topic = topic;
    this.#channel = channel;
    this.#unsubscribe = unsubscribe;
    channel.onUnsolicited = (response) => this.#onMessage(response);
    this.closed = channel.closed.then(() => this.#finish());
  }

  /** Ends the subscription; the server closes its stream. Calling it again returns the same promise. */
  unsubscribe(): Promise<void> {
    if (this.#done) return Promise.resolve();
    this.#unsubscribing ??= this.#unsubscribe(this).finally(() => this.#finish());
    return this.#unsubscribing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.unsubscribe();
  }

  [Symbol.asyncIterator](): AsyncIterator<KvValue[]> {
    return {
      next: () => this.#next(),
      return: async () => {
        await this.unsubscribe();
        return { done: true, value: undefined };
      },
    };
  }

  #next(): Promise<IteratorResult<KvValue[]>> {
    const message = this.#buffer.shift();
    if (message !== undefined) {
      if (this.#buffer.length < BUFFER_HIGH_WATER / 2) this.#channel.stream.resume();
      return Promise.resolve({ done: false, value: message });
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#done) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failWaiter = reject;
    });
  }

  #onMessage(response: CommandResponse): void {
    if (response.status !== 200) {
      this.#error = new ProtokvError(response.status, response.message);
      this.#finish();
      return;
    }
    const message = response.values.map(fromValue);
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = this.#failWaiter = undefined;
      waiter({ done: false, value: message });
      return;
    }
    this.#buffer.push(message);
    if (this.#buffer.length >= BUFFER_HIGH_WATER) this.#channel.stream.pause();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    this.#channel.stream.resume();
    this.#channel.end();
    const { waiter, fail, error } = { waiter: this.#waiter, fail: this.#failWaiter, error: this.#error };
    this.#waiter = this.#failWaiter = undefined;
    if (error !== undefined) fail?.(error);
    else waiter?.({ done: true, value: undefined });
  }
}
