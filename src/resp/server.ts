/**
 * The RESP listener: plain TCP or TLS, each connection a Redis client (connection.ts) of the same
 * service the protobuf listener serves. It owns connection-level concerns — the connection limit,
 * the idle timeout, graceful shutdown — and the state RESP commands share (context.ts).
 *
 * Closing the listener does not close the service: the protobuf listener (or whoever built the
 * service) does that, after this listener has finished.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Service } from '../service/service.js';
import type { TlsMaterial } from '../transport/server.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/frame.js';
import { RateLimitedLog } from '../logger.js';
import { DEFAULT_INPUT_BUDGET, InputBudget } from '../transport/input-budget.js';
import { STREAM_DEFAULTS } from '../transport/stream-server.js';
import { CommandTable } from './commands/table.js';
import { RespConnection } from './connection.js';
import type { RespContext, RespLimits } from './context.js';
import { ScanCursors } from './cursors.js';
import { MAX_INLINE_SIZE } from './parser.js';
import { fixedParam, integerParam, RedisConfig } from './redis-config.js';
import { RespStats } from './stats.js';

export interface RespServerOptions {
  service: Service;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 6379; 0 lets the OS pick. */
  port?: number;
  tls?: TlsMaterial;
  /** Largest bulk argument and largest reply. Default 64 MiB (the protobuf maximum frame size). */
  maxFrameSize?: number;
  maxConnections?: number;
  /** 0: never. */
  idleTimeoutMs?: number;
  maxPendingResponses?: number;
  /** Unsent output past which a connection stops being read. Default 32 MiB (the protobuf listener's). */
  maxOutputBuffer?: number;
  /**
   * Caps the input held by every connection together: pass the protobuf listener's budget
   * (`ProtokvServer.inputBudget`) so that one server-wide budget covers both; a number (or
   * nothing) gives this listener a budget of its own.
   */
  inputBudget?: InputBudget | number;
  /** A request must complete within this many ms of its first byte, plus 1 s per MiB. Default 10 s; 0: never. */
  frameTimeoutMs?: number;
  subscriberBacklogMessages?: number;
  subscriberBacklogBytes?: number;
  /** Reported by INFO and CONFIG GET (`memory`, `lmdb`, …). Default `memory`. */
  storeKind?: string;
  /** Graceful shutdown waits this long for connections to finish. Default 10 s. */
  shutdownTimeoutMs?: number;
}

export const DEFAULT_RESP_PORT = 6379;
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
const STATS_SAMPLE_MS = 100;

export class RespServer {
  readonly #server: net.Server;
  readonly #options: RespServerOptions;
  readonly #context: RespContext & { port: number };
  readonly #clients = new Map<number, RespConnection>();
  readonly #sockets = new Set<net.Socket>();
  readonly #sampler: NodeJS.Timeout;
  #nextId = 1;
  #closing: Promise<void> | undefined;

  private constructor(options: RespServerOptions) {
    this.#options = options;
    const service = options.service;
    const maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    const limits: RespLimits = {
      maxBulkLength: maxFrameSize,
      maxRequestBytes: maxFrameSize + MAX_INLINE_SIZE,
      maxKeysPerCommand: service.maxKeysPerCommand,
      maxPendingResponses: options.maxPendingResponses ?? 1024,
      maxOutputBuffer: options.maxOutputBuffer ?? STREAM_DEFAULTS.maxOutputBuffer,
      frameTimeoutMs: options.frameTimeoutMs ?? STREAM_DEFAULTS.frameTimeoutMs,
      subscriberBacklogMessages: options.subscriberBacklogMessages ?? 10_000,
      subscriberBacklogBytes: options.subscriberBacklogBytes ?? 64 * 1024 * 1024,
      maxConnections: options.maxConnections ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
    };
    const stats = new RespStats();
    const storeKind = options.storeKind ?? 'memory';
    const logger = service.logger;
    const budget = options.inputBudget;
    this.#context = {
      service,
      logger,
      inputBudget: budget instanceof InputBudget ? budget : new InputBudget(budget ?? DEFAULT_INPUT_BUDGET),
      logs: {
        protocolErrors: new RateLimitedLog(logger, 'info', 'RESP protocol error; closing the connection'),
        requestTimeouts: new RateLimitedLog(logger, 'info', 'RESP request not completed in time; closing the connection'),
        slowSubscribers: new RateLimitedLog(logger, 'warn', 'RESP subscriber backlog limit reached; disconnecting the subscriber'),
        refusedConnections: new RateLimitedLog(logger, 'warn', 'RESP connection limit reached; refusing a connection'),
        crossProtocol: new RateLimitedLog(logger, 'warn', 'HTTP request on the RESP port (possible cross-protocol attack); connection closed'),
      },
      limits,
      commands: new CommandTable(stats),
      config: redisConfig(limits, storeKind, () => this.address()),
      stats,
      cursors: new ScanCursors(),
      clients: this.#clients,
      startedAt: Date.now(),
      port: 0,
      storeKind,
    };
    const onConnection = (socket: net.Socket): void => this.#accept(socket);
    if (options.tls) {
      const { cert, key, clientCa } = options.tls;
      const server = tls.createServer({
        cert,
        key,
        minVersion: 'TLSv1.2',
        allowHalfOpen: true,
        handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
        ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true, rejectUnauthorized: true }),
      });
      server.on('secureConnection', onConnection);
      server.on('tlsClientError', (err, socket) => {
        service.logger.info({ err: err.message, remote: socket.remoteAddress }, 'RESP TLS handshake refused');
        service.instrumentation?.connectionRejected('tls_handshake');
        socket.destroy();
      });
      this.#server = server;
    } else {
      this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
    }
    this.#server.on('connection', (socket: net.Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#sampler = setInterval(() => stats.sample(Date.now()), STATS_SAMPLE_MS);
    this.#sampler.unref();
  }

  /** Starts listening; resolves once the port is bound. */
  static async listen(options: RespServerOptions): Promise<RespServer> {
    const server = new RespServer(options);
    try {
      await new Promise<void>((resolve, reject) => {
        server.#server.once('error', reject);
        server.#server.listen(options.port ?? DEFAULT_RESP_PORT, options.host ?? '127.0.0.1', () => {
          server.#server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      clearInterval(server.#sampler);
      throw err;
    }
    server.#context.port = server.address().port;
    return server;
  }

  address(): { host: string; port: number } {
    const a = this.#server.address() as net.AddressInfo | null;
    return a === null ? { host: this.#options.host ?? '127.0.0.1', port: 0 } : { host: a.address, port: a.port };
  }

  /** Connected clients right now. */
  get connectionCount(): number {
    return this.#clients.size;
  }

  /** The shared state commands see (for tests and embedding). */
  get context(): RespContext {
    return this.#context;
  }

  /**
   * Graceful shutdown: stop accepting, let every connection finish what it was asked, end
   * subscriptions, and close connections still busy after the shutdown timeout.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sampler);
      const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      const finished = Promise.all(Array.from(this.#clients.values(), (c) => c.drain()));
      const timeoutMs = this.#options.shutdownTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      if (await Promise.race([finished.then(() => false), timedOut])) {
        this.#context.logger.warn({ connections: this.#clients.size, timeoutMs }, 'RESP shutdown timeout: closing connections that did not finish');
        for (const c of this.#clients.values()) c.kill();
      }
      clearTimeout(timer);
      for (const socket of this.#sockets) socket.destroy();
      await stopped;
    })();
    return this.#closing;
  }

  #accept(socket: net.Socket): void {
    const context = this.#context;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const instrumentation = context.service.instrumentation;
    if (this.#closing !== undefined) {
      instrumentation?.connectionRejected('shutting_down');
      socket.destroy();
      return;
    }
    const limits = context.limits;
    if (this.#clients.size >= limits.maxConnections) {
      context.stats.rejectedConnections++;
      instrumentation?.connectionRejected('max_connections');
      context.logs.refusedConnections.log({ maxConnections: limits.maxConnections });
      socket.end('-ERR max number of clients reached\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    context.stats.connectionsReceived++;
    const client = new RespConnection(socket, this.#nextId++, context);
    this.#clients.set(client.id, client);
    instrumentation?.connectionOpened('resp');
    void client.closed.then(() => {
      this.#clients.delete(client.id);
      instrumentation?.connectionClosed('resp');
    });
    if (limits.idleTimeoutMs > 0) {
      socket.setTimeout(limits.idleTimeoutMs, () => {
        // Like Redis, subscribers are never idle: they wait for messages.
        if (client.channels.size + client.patterns.size > 0) return;
        context.logger.info({ idleTimeoutMs: limits.idleTimeoutMs, client: client.id }, 'idle timeout; closing the RESP connection');
        socket.destroy();
      });
    }
  }
}

/** The CONFIG GET/SET parameters (see redis-config.ts). */
function redisConfig(limits: RespLimits, storeKind: string, address: () => { host: string; port: number }): RedisConfig {
  const durable = storeKind !== 'memory';
  const entries = integerParam('hash-max-listpack-entries', ['hash-max-ziplist-entries'], 128, 0, Number.MAX_SAFE_INTEGER);
  const value = integerParam('hash-max-listpack-value', ['hash-max-ziplist-value'], 64, 0, Number.MAX_SAFE_INTEGER);
  const backlog = limits.subscriberBacklogBytes;
  const settingOnly = 'protokv sets this with its own settings (see protokv serve --help)';
  return new RedisConfig([
    fixedParam('save', '', durable ? 'every write is durable before it is acknowledged; there are no snapshots' : 'the memory store has no snapshots'),
    fixedParam('appendonly', durable ? 'yes' : 'no', 'the store decides durability (--memory or --data-dir)'),
    fixedParam('appendfsync', durable ? 'always' : 'no', 'the store decides durability (--memory or --data-dir)'),
    fixedParam('databases', '1', 'protokv has a single keyspace'),
    fixedParam('daemonize', 'no'),
    fixedParam('maxclients', String(limits.maxConnections), settingOnly),
    fixedParam('timeout', String(Math.floor(limits.idleTimeoutMs / 1000)), settingOnly),
    fixedParam('port', () => String(address().port), settingOnly),
    fixedParam('bind', () => address().host, settingOnly),
    fixedParam('proto-max-bulk-len', String(limits.maxBulkLength), settingOnly),
    fixedParam('client-query-buffer-limit', String(limits.maxRequestBytes), settingOnly),
    fixedParam('client-output-buffer-limit', `normal 0 0 0 slave 0 0 0 pubsub ${backlog} ${backlog} 0`, settingOnly),
    fixedParam('maxmemory', '0', 'protokv does not evict keys'),
    fixedParam('maxmemory-policy', 'noeviction', 'protokv does not evict keys'),
    fixedParam('notify-keyspace-events', '', 'keyspace notifications are not supported'),
    fixedParam('requirepass', '', 'protokv has no passwords; use mutual TLS'),
    entries,
    value,
  ]);
}
