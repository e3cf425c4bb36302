/**
 * The network listener: plain TCP or TLS (optionally mutual TLS), each connection served as one
 * protokv stream (or, with yamux, as a session of many). It owns connection-level concerns —
 * the connection limit, idle timeout, graceful shutdown — and nothing about commands.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { encodeResponseFrame } from '../protocol/response-encoder.js';
import { errorResponse, errors } from '../errors.js';
import { RateLimitedLog } from '../logger.js';
import type { Service } from '../service/service.js';
import { DEFAULT_INPUT_BUDGET, InputBudget } from './input-budget.js';
import { serveStream, STREAM_DEFAULTS, type ServedStream, type StreamLimits, type StreamShared } from './stream-server.js';
import { GoAwayCode, YamuxSession } from './yamux.js';
import { serverTlsOptions, type TlsMaterial } from '../tls/server-options.js';
import type { StreamOrigin, TransportName } from '../observability/instrumentation.js';

export type { TlsMaterial };

export interface ServerOptions extends StreamLimits {
  service: Service;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 9527; 0 lets the OS pick. */
  port?: number;
  tls?: TlsMaterial;
  /** Most simultaneous connections; over it a client gets a 503 and is closed. Default 10,000. */
  maxConnections?: number;
  /** Close connections idle this long (ms); 0 disables. Default 0. */
  idleTimeoutMs?: number;
  /** Graceful shutdown waits this long (ms) for streams to finish before closing them hard. Default 10,000. */
  shutdownTimeoutMs?: number;
  /** `yamux`: every connection is a yamux session whose streams are each a protokv stream. Default `none`. */
  mux?: 'none' | 'yamux';
  /** Bytes of partly received frames all streams together may hold (see `InputBudget`). Default 256 MiB. */
  inputBudget?: number;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 9527;
export const DEFAULT_MAX_CONNECTIONS = 10_000;
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000;

export class ProtokvServer {
  readonly #server: net.Server;
  readonly #service: Service;
  readonly #options: ServerOptions;
  readonly #connections = new Set<Duplex>();
  readonly #streams = new Set<ServedStream>();
  readonly #sessions = new Set<YamuxSession>();
  /** Every accepted TCP socket, including TLS ones still handshaking, so shutdown can end them all. */
  readonly #sockets = new Set<net.Socket>();
  readonly #shared: StreamShared;
  /** Events a client can cause at will, logged without flooding the log. */
  readonly #notices: { handshakes: RateLimitedLog; refusals: RateLimitedLog; idle: RateLimitedLog };
  #closing: Promise<void> | undefined;
  /** Where accepted connections come from, and the streams they carry (the same, or yamux); set once bound. */
  #connectionOrigin: StreamOrigin | undefined;
  #streamOrigin: StreamOrigin | undefined;

  private constructor(options: ServerOptions) {
    this.#options = options;
    this.#service = options.service;
    const logger = options.service.logger;
    this.#shared = {
      inputBudget: new InputBudget(options.inputBudget ?? DEFAULT_INPUT_BUDGET),
      frameTimeouts: new RateLimitedLog(logger, 'info', 'frame not completed in time; closing the stream'),
    };
    this.#notices = {
      handshakes: new RateLimitedLog(logger, 'info', 'TLS handshake refused'),
      refusals: new RateLimitedLog(logger, 'warn', 'connection limit reached; refusing a connection'),
      idle: new RateLimitedLog(logger, 'info', 'idle timeout; closing the connection'),
    };
    const onConnection = (socket: Duplex): void => this.#accept(socket);
    if (options.tls) {
      const server = tls.createServer({ ...serverTlsOptions(options.tls), allowHalfOpen: true });
      server.on('secureConnection', onConnection);
      server.on('tlsClientError', (err, socket) => {
        this.#notices.handshakes.log({ err: err.message, remote: socket.remoteAddress });
        this.#service.instrumentation?.connectionRejected('tls_handshake');
        // With half-open sockets allowed, a peer that hung up mid-handshake would otherwise linger.
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
  }

  /** Starts listening; resolves once the port is bound. */
  static async listen(options: ServerOptions): Promise<ProtokvServer> {
    const server = new ProtokvServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(options.port ?? DEFAULT_PORT, options.host ?? DEFAULT_HOST, () => {
        server.#server.off('error', reject);
        const port = server.address().port;
        server.#connectionOrigin = { transport: options.tls ? 'tls' : 'tcp', port };
        server.#streamOrigin = options.mux === 'yamux' ? { transport: 'yamux', port } : server.#connectionOrigin;
        resolve();
      });
    });
    return server;
  }

  /** The bound address (useful with port 0). */
  address(): { host: string; port: number } {
    const a = this.#server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** The server-wide budget for buffered input. */
  get inputBudget(): InputBudget {
    return this.#shared.inputBudget;
  }

  /** Open connections right now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Graceful shutdown: stop accepting, let every stream answer what it already received, end
   * subscriptions, then close the service (and its store).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      // Multiplexed clients learn at once that no new stream will be accepted.
      for (const session of this.#sessions) session.goAway();
      const finished = (async () => {
        await Promise.all(Array.from(this.#streams, (s) => s.drain()));
        await Promise.all(Array.from(this.#sessions, (session) => session.close()));
      })();
      const timeoutMs = this.#options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
      if (await Promise.race([finished.then(() => false), timedOut])) {
        this.#service.logger.warn({ streams: this.#streams.size, timeoutMs }, 'shutdown timeout: closing streams that did not finish');
        for (const session of this.#sessions) session.destroy();
      }
      clearTimeout(timer);
      for (const notice of [this.#shared.frameTimeouts, ...Object.values(this.#notices)]) notice.flush();
      // What is left never became a stream (handshaking, or refused): nothing to finish.
      for (const socket of this.#sockets) socket.destroy();
      await stopped;
      await this.#service.close();
    })();
    return this.#closing;
  }

  /**
   * Serves a connection that arrived through another listener (a WebSocket on the HTTP listener)
   * as one stream, under this server's connection limit and graceful shutdown. `origin` labels its
   * metrics and traces: its transport and the port of the listener it came through.
   */
  adopt(stream: Duplex, origin: StreamOrigin = { transport: 'websocket', port: 0 }): void {
    this.#accept(stream, origin);
  }

  /** `adopted`: the origin of a connection from another listener, served as one stream. */
  #accept(socket: Duplex, adopted?: StreamOrigin): void {
    const options = this.#options;
    const logger = this.#service.logger;
    const instrumentation = this.#service.instrumentation;
    const multiplexed = adopted === undefined && options.mux === 'yamux';
    if (socket instanceof net.Socket) socket.setNoDelay(true);
    if (this.#closing !== undefined) {
      instrumentation?.connectionRejected('shutting_down');
      refuse(socket, errors.shuttingDown(), multiplexed);
      return;
    }
    const max = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (this.#connections.size >= max) {
      this.#notices.refusals.log({ maxConnections: max });
      instrumentation?.connectionRejected('max_connections');
      refuse(socket, errors.limitReached(`too many connections (maximum ${max})`), multiplexed);
      return;
    }
    const transport: TransportName = (adopted ?? this.#connectionOrigin!).transport;
    this.#connections.add(socket);
    instrumentation?.connectionOpened(transport);
    socket.once('close', () => {
      this.#connections.delete(socket);
      instrumentation?.connectionClosed(transport);
    });
    if (options.idleTimeoutMs && socket instanceof net.Socket) {
      socket.setTimeout(options.idleTimeoutMs, () => {
        this.#notices.idle.log({ idleTimeoutMs: options.idleTimeoutMs });
        socket.destroy();
      });
    }
    if (multiplexed) {
      const session = new YamuxSession(socket, 'server', { frameTimeoutMs: options.frameTimeoutMs ?? STREAM_DEFAULTS.frameTimeoutMs });
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      session.on('error', (err) => logger.debug({ err }, 'yamux session error'));
      // A stream that breaks the frame time limit takes its connection with it.
      const closeSession = (): void => {
        session.goAway(GoAwayCode.ProtocolError);
        setTimeout(() => session.destroy(), REFUSAL_LINGER_MS).unref();
      };
      session.on('stream', (stream) => this.#serve(stream, this.#streamOrigin!, closeSession));
    } else {
      this.#serve(socket, adopted ?? this.#streamOrigin!);
    }
  }

  #serve(stream: Duplex, origin: StreamOrigin, closeConnection?: () => void): void {
    const served = serveStream(stream, this.#service, this.#options, this.#shared, closeConnection, origin);
    this.#streams.add(served);
    // A yamux stream counts as a connection of its own, on top of the connection carrying it.
    const instrumentation = origin.transport === 'yamux' ? this.#service.instrumentation : null;
    instrumentation?.connectionOpened('yamux');
    void served.closed.then(() => {
      this.#streams.delete(served);
      instrumentation?.connectionClosed('yamux');
    });
  }
}

/** How long a refused (or cut-off) connection is given to read its answer. */
const REFUSAL_LINGER_MS = 1000;

/**
 * Answers a connection we will not serve with one error response, then closes it. A yamux
 * client gets it in yamux: the first stream it opens is answered with the error, then the session
 * goes away; a client that opens none sees the go-away.
 */
function refuse(socket: Duplex, err: unknown, yamux: boolean): void {
  socket.on('error', () => {});
  const frame = encodeResponseFrame(errorResponse(err));
  if (!yamux) {
    socket.end(frame);
    setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
    return;
  }
  const session = new YamuxSession(socket, 'server', { keepAliveMs: false, maxStreams: 1 });
  session.on('error', () => {});
  session.once('stream', (stream) => {
    stream.on('error', () => {});
    stream.end(frame);
    void session.close();
  });
  const timer = setTimeout(() => session.destroy(), REFUSAL_LINGER_MS);
  timer.unref();
  session.once('close', () => clearTimeout(timer));
}
