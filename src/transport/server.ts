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
import type { Service } from '../service/service.js';
import { serveStream, type ServedStream, type StreamLimits } from './stream-server.js';
import { YamuxSession } from './yamux.js';
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
  #closing: Promise<void> | undefined;
  /** Where accepted connections come from, and the streams they carry (the same, or yamux); set once bound. */
  #connectionOrigin: StreamOrigin | undefined;
  #streamOrigin: StreamOrigin | undefined;

  private constructor(options: ServerOptions) {
    this.#options = options;
    this.#service = options.service;
    const onConnection = (socket: Duplex): void => this.#accept(socket);
    if (options.tls) {
      const server = tls.createServer({ ...serverTlsOptions(options.tls), allowHalfOpen: true });
      server.on('secureConnection', onConnection);
      server.on('tlsClientError', (err, socket) => {
        this.#service.logger.info({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake refused');
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
    if (socket instanceof net.Socket) socket.setNoDelay(true);
    if (this.#closing !== undefined) {
      instrumentation?.connectionRejected('shutting_down');
      refuse(socket, errors.shuttingDown());
      return;
    }
    const max = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (this.#connections.size >= max) {
      logger.warn({ maxConnections: max }, 'connection limit reached; refusing a connection');
      instrumentation?.connectionRejected('max_connections');
      refuse(socket, errors.limitReached(`too many connections (maximum ${max})`));
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
        logger.info({ idleTimeoutMs: options.idleTimeoutMs }, 'idle timeout; closing the connection');
        socket.destroy();
      });
    }
    if (adopted === undefined && options.mux === 'yamux') {
      const session = new YamuxSession(socket, 'server');
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      session.on('error', (err) => logger.debug({ err }, 'yamux session error'));
      session.on('stream', (stream) => this.#serve(stream, this.#streamOrigin!));
    } else {
      this.#serve(socket, adopted ?? this.#streamOrigin!);
    }
  }

  #serve(stream: Duplex, origin: StreamOrigin): void {
    const served = serveStream(stream, this.#service, this.#options, origin);
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

/** Answers a connection we will not serve with one error response, then closes it. */
function refuse(socket: Duplex, err: unknown): void {
  socket.on('error', () => {});
  socket.end(encodeResponseFrame(errorResponse(err)));
  setTimeout(() => socket.destroy(), 1000).unref();
}
