/**
 * One RESP client connection: bytes in → parser → command table → replies out, in order.
 *
 * Commands run as soon as they are parsed (pipelining). A reply the store answers synchronously
 * is written straight into the connection's reply buffer; one that waits on a promise takes a
 * slot in an ordered queue, and replies after it queue behind it, so order always holds. Replies
 * produced while handling one chunk of input leave in one socket write.
 *
 * Memory is bounded like the protobuf stream server's: while too many replies wait on the store,
 * or too many bytes wait to be sent, the connection stops reading and executing (TCP
 * back-pressure reaches the client) until the backlog drains; a subscriber that falls behind
 * past the subscriber backlog is disconnected.
 */
import type net from 'node:net';
import { setImmediate } from 'node:timers';
import { KvError } from '../errors.js';
import type { CommandContext } from '../service/commands.js';
import { InputReservation, type BudgetWaiter } from '../transport/input-budget.js';
import { ReplyError, type Call, type CommandSpec, type Deferred } from './command.js';
import type { ClientState, ReplyMode } from './client.js';
import { dropSubscriptions } from './commands/pubsub.js';
import type { CommandEntry } from './commands/table.js';
import type { RespContext } from './context.js';
import { RespParser, RespProtocolError, type Args } from './parser.js';
import type { RespSubscription } from './pubsub.js';
import { ReplyWriter } from './reply.js';
import { FrameTimer } from '../transport/frame-timer.js';

/** Commands run for one connection before other connections get a turn of the event loop. */
const COMMANDS_PER_TURN = 1024;
/** Replies up to this size are joined into one buffer before writing. */
const MAX_JOINED_WRITE = 64 * 1024;

interface Slot {
  readonly writer: ReplyWriter;
  /** False while an asynchronous reply is awaited. */
  ready: boolean;
  /** Holds synchronous replies queued behind an asynchronous one. */
  readonly sync: boolean;
}

export class RespConnection implements ClientState, BudgetWaiter {
  readonly id: number;
  name: Buffer | undefined;
  #protocol: 2 | 3 = 2;
  readonly createdAt = Date.now();
  lastInteraction = this.createdAt;
  lastCommand = 'NULL';
  readonly remoteAddress: string;
  readonly localAddress: string;
  readonly channels = new Map<string, RespSubscription>();
  readonly patterns = new Map<string, RespSubscription>();
  readonly context: CommandContext;
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;

  readonly #socket: net.Socket;
  readonly #server: RespContext;
  readonly #parser: RespParser;
  readonly #out = new ReplyWriter();
  readonly #queue: Slot[] = [];
  /** Replies waiting on the store. */
  #awaiting = 0;
  /** Pub/sub messages queued and not yet handed to the socket. */
  #queuedMessages = 0;
  /** Pub/sub messages handed to the socket and not yet written out by it. */
  #inFlightMessages = 0;
  #replyOff = false;
  #replySkip = false;
  #replySkipNext = false;
  /** No more commands are run; pending replies are sent, then the connection ends. */
  #closing = false;
  /** The client sent its last byte: what it sent is run and answered, then the connection ends. */
  #inputEnded = false;
  #isClosed = false;
  #paused = false;
  #flushScheduled = false;
  #peakReply = 0;
  /** A command is running (CLIENT LIST counts its arguments as query buffer). */
  #executing = false;
  /** Set while a command holds the connection (see `hold`). */
  #held: Promise<unknown> | undefined;
  /** Stopped after a turn's worth of commands, to let other connections run; resumes on the next turn. */
  #yielding = false;
  /** Times the request the client is sending (slow-drip connections are closed). */
  readonly #requestTimer: FrameTimer;
  /** This connection's share of the server-wide input budget. */
  readonly #reservation: InputReservation;
  /** Requests completed so far: identifies the one being timed. */
  #requests = 0;

  constructor(socket: net.Socket, id: number, server: RespContext) {
    this.#socket = socket;
    this.id = id;
    this.#server = server;
    this.#reservation = new InputReservation(server.inputBudget, this);
    this.#parser = new RespParser({ maxBulkLength: server.limits.maxBulkLength, maxRequestBytes: server.limits.maxRequestBytes });
    this.remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort);
    this.localAddress = formatAddress(socket.localAddress, socket.localPort);
    this.context = server.service.contextFor(undefined, { transport: 'resp', port: server.port });
    const onError = (text: string): void => server.stats.error(text);
    this.#out.onError = onError;
    this.#requestTimer = new FrameTimer(server.limits.frameTimeoutMs, () => this.#requestTimedOut());
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('drain', () => this.#maybeResume());
    socket.on('error', (err) => server.logger.debug({ err, client: id }, 'RESP connection error'));
    socket.once('close', () => this.#onClose());
  }

  // --- ClientState ---

  get protocol(): 2 | 3 {
    return this.#protocol;
  }

  set protocol(version: 2 | 3) {
    this.#protocol = version;
  }

  get replyMode(): ReplyMode {
    return this.#replyOff ? 'off' : this.#replySkip || this.#replySkipNext ? 'skip' : 'on';
  }

  /** CLIENT REPLY: `on` clears OFF and a pending SKIP; `skip` silences the next command. */
  set replyMode(mode: ReplyMode) {
    if (mode === 'on') {
      this.#replyOff = false;
      this.#replySkip = false;
      this.#replySkipNext = false;
    } else if (mode === 'off') {
      this.#replyOff = true;
    } else if (!this.#replyOff) {
      this.#replySkipNext = true;
    }
  }

  get closing(): boolean {
    return this.#closing || this.#isClosed;
  }

  closeAfterReply(): void {
    this.#closing = true;
    this.#scheduleFlush();
  }

  kill(): void {
    this.#socket.destroy();
  }

  deliver(message: Buffer | ((out: ReplyWriter) => void)): void {
    if (this.#isClosed || this.#closing) return;
    const limits = this.#server.limits;
    const backlogBytes = this.#socket.writableLength + this.#pendingBytes();
    const backlogMessages = this.#queuedMessages + this.#inFlightMessages;
    if (backlogMessages >= limits.subscriberBacklogMessages || backlogBytes >= limits.subscriberBacklogBytes) {
      this.#server.logs.slowSubscribers.log({ client: this.id, unwrittenMessages: backlogMessages, unwrittenBytes: backlogBytes });
      dropSubscriptions(this);
      this.#socket.destroy();
      return;
    }
    const out = this.#target();
    out.protocol = this.#protocol;
    if (Buffer.isBuffer(message)) out.raw(message);
    else message(out);
    this.#queuedMessages++;
    this.#scheduleFlush();
  }

  hold(until: Promise<unknown>): void {
    const held = until.then(
      () => undefined,
      () => undefined,
    );
    this.#held = held;
    void held.then(() => {
      if (this.#held !== held) return;
      this.#held = undefined;
      this.#maybeResume();
    });
  }

  describe(): string {
    const socket = this.#socket;
    const now = Date.now();
    const subscribed = this.channels.size + this.patterns.size > 0;
    const flags = `${subscribed ? 'P' : ''}${this.#closing ? 'c' : ''}` || 'N';
    const args = this.#parser.args;
    let qbuf = this.#parser.buffered;
    let argvMem = 0;
    if (this.#executing) {
      qbuf += args.wireBytes;
      for (let i = 0; i < args.count; i++) argvMem += args.length(i);
    }
    const obl = this.#out.size;
    const omem = socket.writableLength + this.#pendingBytes() - obl;
    const events = socket.writableLength > 0 ? 'rw' : 'r';
    const fd = (socket as net.Socket & { _handle?: { fd?: number } })._handle?.fd ?? -1;
    return (
      `id=${this.id} addr=${this.remoteAddress} laddr=${this.localAddress} fd=${fd} name=${this.name?.toString('latin1') ?? ''} ` +
      `age=${Math.floor((now - this.createdAt) / 1000)} idle=${Math.floor((now - this.lastInteraction) / 1000)} flags=${flags} db=0 ` +
      `sub=${this.channels.size} psub=${this.patterns.size} ssub=0 multi=-1 qbuf=${qbuf} qbuf-free=0 argv-mem=${argvMem} multi-mem=0 ` +
      `rbs=${Math.max(1024, this.#peakReply)} rbp=${this.#peakReply} obl=${obl} oll=${this.#queue.length} omem=${omem} ` +
      `tot-mem=${qbuf + argvMem + obl + omem + 1024} events=${events} cmd=${this.lastCommand} user=default redir=-1 resp=${this.#protocol}`
    );
  }

  // --- lifecycle ---

  /** Graceful shutdown: stops reading, sends what is pending, then ends the connection. */
  drain(): Promise<void> {
    dropSubscriptions(this);
    this.#closing = true;
    this.#socket.pause();
    this.#scheduleFlush();
    return this.closed;
  }

  #onData(chunk: Buffer): void {
    if (this.#closing) return;
    this.#server.stats.netInputBytes += chunk.length;
    this.context.instrumentation?.received(chunk.length);
    this.#parser.push(chunk);
    this.#process();
  }

  #onEnd(): void {
    // The client will send nothing more: finish what it asked, then close our side too.
    this.#inputEnded = true;
    dropSubscriptions(this);
    this.#scheduleFlush();
  }

  #onClose(): void {
    this.#isClosed = true;
    dropSubscriptions(this);
    this.#queue.length = 0;
    this.#requestTimer.dispose();
    this.#reservation.release();
  }

  // --- input limits ---

  /**
   * After input was read or run: keeps the input budget reservation equal to what the held input
   * needs, stops reading while it does not fit, and times a request the client is still sending.
   */
  #updateInput(): void {
    if (this.#isClosed) return;
    const fits = this.#reserveInput();
    const reading = fits && !this.#paused && !this.#closing && !this.#yielding;
    if (!reading) this.#socket.pause();
    else if (this.#socket.isPaused()) this.#socket.resume();
    if (reading && this.#parser.incomplete) this.#requestTimer.await(this.#requests, this.#parser.expectedBytes);
    else this.#requestTimer.stop();
  }

  /** Reserves budget for the held input; false (and waiting for room) when it does not fit. */
  #reserveInput(): boolean {
    return this.#reservation.update(this.#closing ? 0 : this.#parser.expectedBytes, this.#parser.buffered);
  }

  /** Called by the input budget when room frees up; true once this connection got what it needed. */
  retry(): boolean {
    if (this.#isClosed) return true;
    if (!this.#reserveInput()) return false;
    this.#reservation.retried();
    this.#updateInput();
    return true;
  }

  #requestTimedOut(): void {
    if (this.#isClosed || this.#closing) return;
    const ms = this.#server.limits.frameTimeoutMs;
    this.#server.logs.requestTimeouts.log({ client: this.id, frameTimeoutMs: ms, bufferedBytes: this.#parser.buffered });
    this.#target().error(`ERR Service unavailable: request not completed within ${ms} ms`);
    this.#closing = true;
    this.#flush();
  }

  // --- input ---

  /** Runs every complete command buffered, unless the connection is over a limit. */
  #process(): void {
    const parser = this.#parser;
    let run = 0;
    while (!this.#closing && !this.#paused && !this.#yielding) {
      if (run === COMMANDS_PER_TURN) {
        // Others get their turn; reading stops until the rest of the buffered input has run.
        this.#yielding = true;
        setImmediate(() => {
          this.#yielding = false;
          this.#process();
        });
        break;
      }
      let more: boolean;
      try {
        more = parser.next();
      } catch (err) {
        if (!(err instanceof RespProtocolError)) throw err;
        this.#server.logs.protocolErrors.log({ client: this.id, err: err.message });
        this.#target().error(`ERR ${err.message}`);
        this.#closing = true;
        break;
      }
      if (!more) break;
      run++;
      this.#requests++;
      this.#run(parser.args);
      if (this.#overLimit()) this.#pause();
    }
    this.#flush();
    this.#updateInput();
  }

  #run(args: Args): void {
    const server = this.#server;
    this.lastInteraction = Date.now();
    const name = args.keyword(0, 64);
    let entry = name === undefined ? undefined : server.commands.get(name);
    const out = this.#target();
    out.protocol = this.#protocol;
    if (entry === undefined) {
      if (name === 'post' || name === 'host:') {
        // A browser tricked into talking to us (cross-protocol scripting): drop it, as Redis does.
        server.logs.crossProtocol.log({ client: this.id, remote: this.remoteAddress });
        this.#socket.destroy();
        return;
      }
      out.error(unknownCommand(args));
      return;
    }
    if (!arityOk(entry.spec, args.count)) {
      entry.stats.rejected++;
      out.error(`ERR wrong number of arguments for '${entry.spec.name}' command`);
      return;
    }
    if (entry.subcommands !== undefined) {
      const sub = entry.subcommands.get(args.keyword(1, 64) ?? '');
      if (sub === undefined) {
        out.error(`ERR unknown subcommand '${cString(args.view(1), 128)}'. Try ${entry.spec.name.toUpperCase()} HELP.`);
        return;
      }
      entry = sub;
      if (!arityOk(entry.spec, args.count)) {
        entry.stats.rejected++;
        out.error(`ERR wrong number of arguments for '${entry.spec.name}' command`);
        return;
      }
    }
    const spec = entry.spec;
    if (this.#protocol === 2 && spec.inSubscribedMode !== true && this.channels.size + this.patterns.size > 0) {
      entry.stats.rejected++;
      out.error(`ERR Can't execute '${spec.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
      return;
    }
    this.#execute(entry, spec, args, out);
  }

  #execute(entry: CommandEntry, spec: CommandSpec, args: Args, out: ReplyWriter): void {
    const stats = entry.stats;
    const mark = out.mark();
    const errorsBefore = out.errors;
    const call: Call = { args, out, client: this, server: this.#server, command: spec };
    this.#server.stats.commandsProcessed++;
    // As in Redis, CLIENT LIST shows the command being run as the client's last one.
    this.lastCommand = spec.name;
    this.#executing = true;
    const started = performance.now();
    let result: void | Promise<Deferred> = undefined;
    try {
      result = spec.run!(call);
    } catch (err) {
      this.#writeError(out, err);
    }
    stats.usec += (performance.now() - started) * 1000;
    stats.calls++;
    this.#executing = false;
    // Pub/sub confirmations are pushes, which CLIENT REPLY OFF/SKIP does not silence.
    const silenced = (this.#replyOff || this.#replySkip) && !PUSH_REPLIES.has(spec.name);
    this.#replySkip = false;
    if (this.#replySkipNext) {
      this.#replySkipNext = false;
      this.#replySkip = true;
    }
    if (result === undefined) {
      if (out.errors > errorsBefore) stats.failed++;
      if (silenced) out.truncate(mark);
      const size = out.size - mark;
      if (size > this.#peakReply) this.#peakReply = size;
      return;
    }
    const slot: Slot = { writer: new ReplyWriter(), ready: false, sync: false };
    slot.writer.onError = out.onError;
    this.#queue.push(slot);
    this.#awaiting++;
    result
      .then(
        (render) => {
          slot.writer.protocol = this.#protocol;
          render(slot.writer);
        },
        (err: unknown) => this.#writeError(slot.writer, err),
      )
      .then(() => {
        if (slot.writer.errors > 0) stats.failed++;
        if (silenced) slot.writer.truncate(0);
        slot.ready = true;
        this.#awaiting--;
        this.#scheduleFlush();
        this.#maybeResume();
      })
      .catch((err: unknown) => this.#server.logger.error({ err }, 'RESP reply rendering failed'));
  }

  #writeError(out: ReplyWriter, err: unknown): void {
    if (err instanceof ReplyError) {
      out.error(err.text);
      return;
    }
    if (err instanceof KvError) {
      if (err.status >= 500) this.#server.logger.error({ err: err.cause ?? err, code: err.code }, err.message);
      out.error(`ERR ${err.message}`);
      return;
    }
    this.#server.logger.error({ err }, 'RESP command failed');
    out.error(`ERR Internal error: ${err instanceof Error ? err.message : String(err)}`);
  }

  // --- output ---

  /** Where the next reply goes: the reply buffer, or behind the replies awaited. */
  #target(): ReplyWriter {
    const queue = this.#queue;
    if (queue.length === 0) return this.#out;
    const last = queue[queue.length - 1];
    if (last.sync) return last.writer;
    const slot: Slot = { writer: new ReplyWriter(), ready: true, sync: true };
    slot.writer.onError = this.#out.onError;
    queue.push(slot);
    return slot.writer;
  }

  #pendingBytes(): number {
    let n = this.#out.size;
    for (const slot of this.#queue) n += slot.writer.size;
    return n;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    process.nextTick(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Writes every reply that is ready, in order, in as few writes as possible. */
  #flush(): void {
    if (this.#isClosed) return;
    const parts = this.#out.take();
    const queue = this.#queue;
    while (queue.length > 0 && queue[0].ready) {
      const slot = queue.shift()!;
      for (const p of slot.writer.take()) parts.push(p);
    }
    // Synchronous replies queued behind an awaited one stay in its slot until it is ready.
    if (parts.length > 0) {
      let bytes = 0;
      for (const p of parts) bytes += p.length;
      this.#server.stats.netOutputBytes += bytes;
      const socket = this.#socket;
      const messages = this.#queuedMessages;
      this.#inFlightMessages += messages;
      this.#queuedMessages = 0;
      const done = (): void => {
        this.#inFlightMessages -= messages;
        this.context.instrumentation?.written(bytes);
        this.#maybeResume();
      };
      if (parts.length === 1) socket.write(parts[0], done);
      else if (bytes <= MAX_JOINED_WRITE) socket.write(Buffer.concat(parts, bytes), done);
      else {
        socket.cork();
        for (let i = 0; i < parts.length - 1; i++) socket.write(parts[i]);
        socket.write(parts[parts.length - 1], done);
        socket.uncork();
      }
    }
    const finished = this.#closing || (this.#inputEnded && !this.#paused && this.#awaiting === 0);
    if (finished && queue.length === 0 && !this.#socket.writableEnded) {
      const socket = this.#socket;
      if (this.#closing) {
        // QUIT, a protocol error, CLIENT KILL, shutdown: once the replies are out the connection
        // closes both ways, as Redis closes it; a client still sending finds it closed.
        socket.end(() => socket.destroy());
      } else {
        socket.end();
        socket.resume();
      }
    }
    if (this.#overLimit()) this.#pause();
  }

  /** Held by a command, too many replies awaited, or too many bytes unsent (buffered here or in the socket). */
  #overLimit(): boolean {
    const limits = this.#server.limits;
    return (
      this.#held !== undefined ||
      this.#awaiting >= limits.maxPendingResponses ||
      this.#socket.writableLength + this.#out.size >= limits.maxOutputBuffer
    );
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#socket.pause();
  }

  #maybeResume(): void {
    if (!this.#paused || this.#isClosed || this.#overLimit()) return;
    this.#paused = false;
    // Commands already buffered run now; #process resumes reading (budget permitting).
    this.#process();
  }
}

/** Commands whose replies are pushes (never silenced by CLIENT REPLY). */
const PUSH_REPLIES = new Set(['subscribe', 'unsubscribe', 'psubscribe', 'punsubscribe']);

function arityOk(spec: CommandSpec, argc: number): boolean {
  return spec.arity > 0 ? argc === spec.arity : argc >= -spec.arity;
}

/**
 * Bytes as C's `%.*s` prints them: up to the first NUL and at most `max` bytes (Redis builds its
 * error texts with printf).
 */
function cString(bytes: Buffer, max: number): string {
  const nul = bytes.indexOf(0);
  const end = Math.min(nul < 0 ? bytes.length : nul, max);
  return bytes.toString('utf8', 0, end);
}

/** Redis's unknown-command error, arguments quoted up to 128 bytes in all. */
function unknownCommand(args: Args): string {
  let list = '';
  for (let i = 1; i < args.count && Buffer.byteLength(list) < 128; i++) {
    list += `'${cString(args.view(i), 128 - Buffer.byteLength(list))}' `;
  }
  return `ERR unknown command '${cString(args.view(0), 128)}', with args beginning with: ${list}`;
}

function formatAddress(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return '?:0';
  const host = address.startsWith('::ffff:') ? address.slice(7) : address;
  return `${host}:${port ?? 0}`;
}
