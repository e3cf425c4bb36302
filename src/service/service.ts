/**
 * The service: runs each request through the hooks and the command table. It knows nothing of
 * sockets or frames; a transport hands it decoded requests and sends what it returns.
 *
 * Transport contract, per request:
 * 0. once per stream, `const ctx = service.contextFor(stream, origin, maxFrameSize)` (`origin`: its
 *    transport and port, for metrics and tracing; see `observability/instrumentation.ts` for what
 *    a transport reports to `ctx.instrumentation`);
 * 1. `const res = service.execute(request, ctx)` — a response, or a promise of one when the
 *    store answers asynchronously; it has already passed `beforeResponseSend`.
 * 2. write the response, and once the write has completed call `service.responseSent(res)` (the
 *    `afterResponseSend` hooks). `service.wantsSentNotice` says whether anyone listens, so a
 *    transport can skip write callbacks entirely when it is false.
 * A request that could not even be decoded is answered with `service.errorResponse(err)`.
 */
import type { CommandRequest, CommandResponse } from '../protocol/generated/abi.js';
import { errorResponse, toKvError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { isPromise, type MaybePromise, type Store } from '../storage/store.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/frame.js';
import { dispatch, type CommandContext, type RequestStream } from './commands.js';
import { Hooks, type HookName, type HookSignatures } from './hooks.js';
import { PubSub } from './pubsub.js';
import type { Broker } from './broker.js';
import type { Instrumentation, StreamOrigin } from '../observability/instrumentation.js';

export interface ServiceOptions {
  store: Store;
  logger?: Logger;
  /** Most keys (or pairs) one multi-key command may name. Default 100,000. */
  maxKeysPerCommand?: number;
  /** Where published messages go; default: this process only (see broker.ts). */
  broker?: Broker;
  /** Metrics and tracing; absent when both are off. */
  instrumentation?: Instrumentation | null;
}

export const DEFAULT_MAX_KEYS_PER_COMMAND = 100_000;

export class Service {
  readonly store: Store;
  readonly pubsub: PubSub;
  readonly logger: Logger;
  readonly #hooks = new Hooks();
  /** Most keys (or pairs, or published values) one request may name. */
  readonly maxKeysPerCommand: number;
  /** Metrics and tracing, for transports to report connections to; `null` when both are off. */
  readonly instrumentation: Instrumentation | null;
  /** Context for requests that arrive without a stream (in-process callers). */
  readonly #bareContext: CommandContext;
  #closing: Promise<void> | undefined;

  constructor(options: ServiceOptions) {
    this.store = options.store;
    this.pubsub = new PubSub(options.broker);
    this.logger = options.logger ?? silentLogger();
    this.maxKeysPerCommand = options.maxKeysPerCommand ?? DEFAULT_MAX_KEYS_PER_COMMAND;
    this.instrumentation = options.instrumentation ?? null;
    this.#bareContext = this.contextFor(undefined);
  }

  /** Registers a hook; hooks of one point run in registration order. Returns the service for chaining. */
  addHook<N extends HookName>(name: N, fn: HookSignatures[N]): this {
    this.#hooks.add(name, fn);
    return this;
  }

  /** Whether any `afterResponseSend` hook is registered. */
  get wantsSentNotice(): boolean {
    return this.#hooks.afterResponseSend !== null;
  }

  /**
   * Runs `request` through received → dispatch → executed → before-send. Never throws: every
   * failure becomes an error response.
   */
  execute(request: CommandRequest, context: CommandContext = this.#bareContext): MaybePromise<CommandResponse> {
    const hooks = this.#hooks;
    if (hooks.onRequestReceived !== null) {
      for (const fn of hooks.onRequestReceived) this.#safely('onRequestReceived', () => fn(request));
    }
    const instrumentation = context.instrumentation;
    const sequence = instrumentation === null ? -1 : instrumentation.begin(request);
    let result: MaybePromise<CommandResponse>;
    try {
      result = dispatch(request, context);
    } catch (err) {
      result = this.#failed(err);
    }
    if (instrumentation !== null) instrumentation.dispatched();
    if (isPromise(result)) {
      return result.then(
        (res) => this.#finish(res, request, context, sequence),
        (err: unknown) => this.#finish(this.#failed(err), request, context, sequence),
      );
    }
    return this.#finish(result, request, context, sequence);
  }

  /** The response for a request that failed before it could be executed (e.g. undecodable). */
  errorResponse(err: unknown): CommandResponse {
    return this.#beforeSend(this.#failed(err));
  }

  /** Runs the `afterResponseSend` hooks; the transport calls it once `response` is written. */
  responseSent(response: CommandResponse): void {
    const list = this.#hooks.afterResponseSend;
    if (list === null) return;
    for (const fn of list) this.#safely('afterResponseSend', () => fn(response));
  }

  /** Ends every subscription, then closes the store. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.pubsub.close();
      await this.store.close();
    })();
    return this.#closing;
  }

  /**
   * The context for requests arriving on `stream` through `origin` (its transport and listener
   * port); create it once per stream, not per request. Requests on a context without an origin
   * (in-process callers) are not instrumented. `maxResponseBytes` is the stream's maximum frame
   * size (default 64 MiB): no response it is sent may be larger.
   */
  contextFor(stream: RequestStream | undefined, origin?: StreamOrigin, maxResponseBytes = DEFAULT_MAX_FRAME_SIZE): CommandContext {
    const instrumentation = origin === undefined || this.instrumentation === null ? null : this.instrumentation.stream(origin);
    return {
      store: this.store,
      pubsub: this.pubsub,
      maxKeysPerCommand: this.maxKeysPerCommand,
      maxResponseBytes,
      stream,
      transport: origin?.transport,
      instrumentation,
    };
  }

  #failed(err: unknown): CommandResponse {
    const e = toKvError(err);
    if (e.status >= 500) this.logger.error({ err: e.cause ?? e, code: e.code }, e.message);
    else if (e.code === 'TOO_MANY_KEYS') this.logger.warn({ code: e.code }, e.message);
    return errorResponse(e);
  }

  #finish(response: CommandResponse, request: CommandRequest, context: CommandContext, sequence: number): CommandResponse {
    const executed = this.#hooks.onRequestExecuted;
    if (executed !== null) {
      for (const fn of executed) this.#safely('onRequestExecuted', () => fn(response, request));
    }
    const sent = this.#beforeSend(response);
    if (sequence >= 0) context.instrumentation!.answered(sequence, sent);
    return sent;
  }

  #beforeSend(response: CommandResponse): CommandResponse {
    const list = this.#hooks.beforeResponseSend;
    if (list === null) return response;
    let current = response;
    for (const fn of list) {
      this.#safely('beforeResponseSend', () => {
        const replaced = fn(current);
        if (replaced !== undefined) current = replaced;
      });
    }
    return current;
  }

  #safely(hook: HookName, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err, hook }, `hook ${hook} threw; ignored`);
    }
  }
}
