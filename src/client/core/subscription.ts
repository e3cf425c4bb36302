/**
 * A subscription as an async iterable (SPEC 1.6): `for await (const message of sub)` yields each
 * published message as an array of values.
 */
import type { CommandResponse } from '../../protocol/generated/abi.js';
import { fromValue, type KvValue } from '../../protocol/values.js';
import type { ChannelEvents, FrameChannel } from './channel.js';
import { abortError, ConnectionClosedError, ProtokvError, SlowConsumerError } from './errors.js';
import { sleep, within } from './timing.js';
import type { StreamEnd } from './transport.js';

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** Time limit for the server to confirm, in ms. Default: the client's `requestTimeoutMs`. */
  timeoutMs?: number;
  /**
   * Aborts subscribing and, once subscribed, ends the subscription: the iterator then throws an
   * `AbortError` (after the messages already received).
   */
  signal?: AbortSignal;
}

/** @internal What a subscription needs from its client. */
export interface SubscriptionHost {
  readonly address: string;
  readonly multiplexed: boolean;
  readonly bufferSize: number;
  readonly closeTimeoutMs: number;
  readonly requestTimeoutMs: number;
  whenConnected(): Promise<void>;
  retryDelay(attempt: number, lastError: Error): number | null;
  open(
    topic: string,
    events: ChannelEvents,
    limits: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<{ channel: FrameChannel; id: number; generation: number }>;
  stillServing(topic: string, id: number, generation: number): Promise<boolean>;
}

/** @internal */
export const START = Symbol('start');
/** @internal Ends the subscription because its client is gone (`undefined`: closed normally). */
export const FAIL = Symbol('fail');

/** One binding of the subscription to a server stream. */
interface Attempt {
  bound: boolean;
  /** How the stream ended, when it ended before it was bound. */
  pendingEnd?: { end: StreamEnd; partialFrame: boolean };
}

/**
 * A subscription to one topic, on a stream of its own.
 *
 * - **Reading**: messages wait in a bounded buffer (`subscriptionBufferSize`); when it is full the
 *   client stops reading the stream, so a slow reader pushes back on the server instead of
 *   growing this process (the server disconnects it past its backlog limit).
 * - **Reconnects**: when the connection is lost, the client subscribes again once it has
 *   reconnected and the iterator goes on; `id` then changes. Messages published while it was
 *   disconnected are lost.
 * - **Normal end** (the loop finishes): leaving the loop (`break`, `return`), `unsubscribe()`,
 *   `close()` of the client, or an `UNSUBSCRIBE` of its id from any client.
 * - **Abnormal end** (the iterator throws, after yielding the messages already received):
 *   `SlowConsumerError` when the server dropped it for falling behind, `ConnectionClosedError`
 *   when the server is gone for good (reconnecting gave up, or is off), `ProtokvError` when the
 *   server ended it with an error status, `AbortError` when the `signal` fired.
 */
export class Subscription implements AsyncIterable<KvValue[]>, AsyncDisposable {
  readonly topic: string;
  /** Resolves when the subscription has ended, whatever the reason; never rejects. */
  readonly closed: Promise<void>;
  readonly #host: SubscriptionHost;
  readonly #options: SubscribeOptions;
  readonly #stop = new AbortController();
  readonly #buffer: KvValue[][] = [];
  #id = 0;
  #generation = 0;
  #resubscribed = 0;
  #channel: FrameChannel | undefined;
  #attempt: Attempt | undefined;
  #paused = false;
  /**
   * The buffer filled up (so the client stopped reading) since the stream was opened: a server
   * that ends this stream without an error may have dropped it for falling behind.
   */
  #behind = false;
  #waiter: { resolve(r: IteratorResult<KvValue[]>): void; reject(err: Error): void } | undefined;
  #ended = false;
  #error: Error | undefined;
  #errorThrown = false;
  /** Set once ending was asked for (unsubscribe, abort): what arrives now is dropped. */
  #ending: Promise<void> | undefined;
  #resolveClosed!: () => void;

  /** @internal Created by `KvClient.subscribe`. */
  constructor(topic: string, host: SubscriptionHost, options: SubscribeOptions) {
    this.topic = topic;
    this.#host = host;
    this.#options = options;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  /** The server's id of this subscription (> 0); a new one after each re-subscription. */
  get id(): number {
    return this.#id;
  }

  /** How many times it was subscribed again after losing its connection. */
  get resubscribed(): number {
    return this.#resubscribed;
  }

  /** Whether it still delivers messages (it may be re-subscribing right now). */
  get active(): boolean {
    return !this.#ended;
  }

  /** @internal The first SUBSCRIBE; rejects when it fails. */
  async [START](): Promise<void> {
    const { signal, timeoutMs } = this.#options;
    this.#bind(await this.#host.open(this.topic, this.#events(), { signal, timeoutMs }));
    signal?.addEventListener('abort', () => void this.#end(abortError(signal, `the subscription to ${JSON.stringify(this.topic)}`)), {
      once: true,
      signal: this.#stop.signal,
    });
  }

  /** @internal */
  [FAIL](reason: Error | undefined): void {
    this.#stop.abort();
    this.#channel?.destroy();
    this.#finish(reason);
  }

  /**
   * Ends the subscription: closes its stream (the server forgets it at once) and waits, up to the
   * client's `closeTimeoutMs`, for the server to close its side. Messages already received are
   * still yielded. Calling it again returns the same promise; it never rejects.
   */
  unsubscribe(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return this.#end(undefined);
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

  // --- reading ---

  #next(): Promise<IteratorResult<KvValue[]>> {
    if (this.#buffer.length > 0) {
      const value = this.#buffer.shift()!;
      if (this.#paused && this.#buffer.length <= this.#host.bufferSize / 2) {
        this.#paused = false;
        this.#channel?.resume();
      }
      return Promise.resolve({ done: false, value });
    }
    if (this.#ended) {
      if (this.#error !== undefined && !this.#errorThrown) {
        this.#errorThrown = true;
        return Promise.reject(this.#error);
      }
      return Promise.resolve({ done: true, value: undefined });
    }
    if (this.#waiter !== undefined) return Promise.reject(new Error('next() called again before the previous call settled'));
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  #onMessage(response: CommandResponse): void {
    if (this.#ended || this.#ending !== undefined) return;
    if (response.status !== 200) {
      this.#channel?.destroy();
      this.#finish(new ProtokvError(response.status, response.message));
      return;
    }
    const message = response.values.map(fromValue);
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve({ done: false, value: message });
      return;
    }
    this.#buffer.push(message);
    if (this.#buffer.length >= this.#host.bufferSize && !this.#paused) {
      this.#paused = true;
      this.#behind = true;
      this.#channel?.pause();
    }
  }

  // --- binding and ending ---

  #events(): ChannelEvents {
    const attempt: Attempt = { bound: false };
    this.#attempt = attempt;
    return {
      onMessage: (response) => {
        if (attempt === this.#attempt) this.#onMessage(response);
      },
      onEnd: (end, info) => {
        if (attempt !== this.#attempt) return;
        if (attempt.bound) void this.#onStreamEnd(end, info.partialFrame);
        else attempt.pendingEnd = { end, partialFrame: info.partialFrame };
      },
    };
  }

  #bind(binding: { channel: FrameChannel; id: number; generation: number }): void {
    this.#channel = binding.channel;
    this.#behind = this.#paused;
    this.#id = binding.id;
    this.#generation = binding.generation;
    if (this.#paused) binding.channel.pause();
    const attempt = this.#attempt!;
    attempt.bound = true;
    if (attempt.pendingEnd !== undefined) void this.#onStreamEnd(attempt.pendingEnd.end, attempt.pendingEnd.partialFrame);
  }

  /** The stream ended and we did not end it: decide between a normal end, an error, and subscribing again. */
  async #onStreamEnd(end: StreamEnd, partialFrame: boolean): Promise<void> {
    this.#channel = undefined;
    if (this.#ended || this.#ending !== undefined) return;
    const what = `subscription ${this.#id} to ${JSON.stringify(this.topic)}`;
    const dropped = this.#behind || partialFrame;
    const slow = (): Error =>
      new SlowConsumerError(`the server dropped ${what}: it fell behind (the server's subscriber backlog limit); messages were lost`);
    const cause = end.kind === 'end' ? undefined : end.error;
    if (end.kind === 'reset') {
      this.#finish(dropped ? slow() : new ConnectionClosedError(`the server aborted ${what}`, { cause }));
      return;
    }
    if (end.kind === 'end' && this.#host.multiplexed) {
      this.#finish(dropped ? slow() : undefined);
      return;
    }
    if (!this.#host.multiplexed && (await this.#host.stillServing(this.topic, this.#id, this.#generation))) {
      if (this.#ended || this.#ending !== undefined) return;
      if (dropped) this.#finish(slow());
      else if (end.kind === 'end') this.#finish(undefined);
      else this.#finish(new ConnectionClosedError(`the server cut ${what}`, { cause }));
      return;
    }
    await this.#resubscribe();
  }

  async #resubscribe(): Promise<void> {
    let lastError: Error;
    for (let attempt = 1; ; attempt++) {
      if (this.#ended || this.#ending !== undefined) return;
      try {
        await this.#host.whenConnected();
      } catch (err) {
        this.#finish(err as Error);
        return;
      }
      if (this.#ended || this.#ending !== undefined) return;
      try {
        const binding = await this.#host.open(this.topic, this.#events(), { signal: this.#stop.signal });
        if (this.#ended || this.#ending !== undefined) {
          binding.channel.destroy();
          return;
        }
        this.#resubscribed++;
        this.#bind(binding);
        return;
      } catch (err) {
        if (this.#ended || this.#ending !== undefined) return;
        if (err instanceof ProtokvError && err.status !== 503) {
          this.#finish(err);
          return;
        }
        lastError = err as Error;
      }
      const delay = this.#host.retryDelay(attempt, lastError);
      if (delay === null) {
        this.#finish(
          new ConnectionClosedError(`gave up subscribing to ${JSON.stringify(this.topic)} again after ${attempt} attempts: ${lastError.message}`, {
            cause: lastError,
          }),
        );
        return;
      }
      await sleep(delay, this.#stop.signal);
    }
  }

  /** Closes the stream (waiting for the server, within limits), then ends with `error`. */
  #end(error: Error | undefined): Promise<void> {
    this.#ending ??= (async () => {
      this.#error ??= error;
      this.#stop.abort();
      const channel = this.#channel;
      if (channel !== undefined) {
        // Read on so the server's end of stream arrives; what comes meanwhile is dropped.
        channel.resume();
        channel.end();
        if (!(await within(channel.closed, this.#host.closeTimeoutMs))) channel.destroy();
      }
      this.#finish(this.#error);
    })();
    return this.#ending;
  }

  #finish(error: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error ??= error;
    this.#stop.abort();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter !== undefined) {
      if (this.#error !== undefined) {
        this.#errorThrown = true;
        waiter.reject(this.#error);
      } else {
        waiter.resolve({ done: true, value: undefined });
      }
    }
    this.#resolveClosed();
  }
}
