/**
 * The HTTP listener (SPEC 6): one HTTP or HTTPS server for everything a browser or an operator's
 * tooling needs. It knows nothing of what it serves: features register themselves on it —
 * exact routes (`/healthz`, `/metrics`), a mount for a whole subtree (the console's files at
 * `/`) and upgrade handlers (the WebSocket endpoint `/ws`). A request nothing claims gets 404.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';
import { serverTlsOptions, type TlsMaterial } from '../tls/server-options.js';

/** Answers one request. A returned promise that rejects becomes a 500 (and is logged). */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * Takes over a connection that asked to upgrade (e.g. to WebSocket) at a registered path. It owns
 * `socket` from then on: it either completes the upgrade or answers and closes it.
 */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** The methods routes may be registered for. A GET route answers HEAD too. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export interface HttpListenerOptions {
  host: string;
  /** 0 lets the OS pick. */
  port: number;
  /** HTTPS with this certificate; with a client CA, clients must present a certificate it signed. */
  tls?: TlsMaterial;
  logger: Logger;
}

/** How long a client may take to send a request's headers, and the whole request. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
/** Idle keep-alive connections are closed after this long. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

export class HttpListener {
  readonly #server: http.Server;
  readonly #logger: Logger;
  /** Exact paths → method → handler. */
  readonly #routes = new Map<string, Map<string, HttpHandler>>();
  /** Subtrees, longest prefix first; each prefix ends with `/`. */
  #mounts: { prefix: string; handler: HttpHandler }[] = [];
  readonly #upgrades = new Map<string, UpgradeHandler>();
  /** Every open connection, so that `close` can end them. */
  readonly #sockets = new Set<Socket>();
  #closing: Promise<void> | undefined;
  #unref = false;

  private constructor(options: HttpListenerOptions) {
    this.#logger = options.logger;
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => this.#dispatch(req, res);
    if (options.tls) {
      const server = https.createServer(serverTlsOptions(options.tls), onRequest);
      server.on('tlsClientError', (err, socket) => {
        this.#logger.info({ err: err.message, remote: socket.remoteAddress }, 'HTTPS handshake refused');
        socket.destroy();
      });
      this.#server = server;
    } else {
      this.#server = http.createServer(onRequest);
    }
    this.#server.headersTimeout = HEADERS_TIMEOUT_MS;
    this.#server.requestTimeout = REQUEST_TIMEOUT_MS;
    this.#server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    this.#server.on('connection', (socket: Socket) => {
      if (this.#unref) socket.unref();
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
  }

  /** Starts listening; resolves once the port is bound. */
  static async listen(options: HttpListenerOptions): Promise<HttpListener> {
    const listener = new HttpListener(options);
    const server = listener.#server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return listener;
  }

  /** The bound address (useful with port 0). */
  address(): { host: string; port: number } {
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Whether it serves HTTPS. */
  get secure(): boolean {
    return this.#server instanceof https.Server;
  }

  /**
   * Serves `method path` (exact path, query string ignored) with `handler`. Other methods on a
   * registered path get 405 with an `Allow` header. Registering a path and method twice throws.
   */
  route(method: HttpMethod, path: string, handler: HttpHandler): this {
    if (!HTTP_METHODS.includes(method)) throw new TypeError(`unknown HTTP method ${String(method)}; use one of ${HTTP_METHODS.join(', ')}`);
    assertPath(path);
    let byMethod = this.#routes.get(path);
    if (byMethod === undefined) this.#routes.set(path, (byMethod = new Map<string, HttpHandler>()));
    if (byMethod.has(method)) throw new Error(`${method} ${path} is already routed`);
    byMethod.set(method, handler);
    return this;
  }

  /**
   * Serves every path under `prefix` (which ends with `/`; `/` is the whole site) with `handler`,
   * whatever the method: the handler answers 405 itself if it must. Exact routes win over mounts,
   * and a longer prefix wins over a shorter one.
   */
  mount(prefix: string, handler: HttpHandler): this {
    assertPath(prefix);
    if (!prefix.endsWith('/')) throw new TypeError(`a mount prefix ends with "/": ${prefix}`);
    if (this.#mounts.some((m) => m.prefix === prefix)) throw new Error(`${prefix} is already mounted`);
    this.#mounts = [...this.#mounts, { prefix, handler }].sort((a, b) => b.prefix.length - a.prefix.length);
    return this;
  }

  /**
   * Hands connections asking to upgrade at `path` (e.g. `Upgrade: websocket` to `/ws`) to
   * `handler`. An upgrade request anywhere else is answered 404 and closed.
   */
  onUpgrade(path: string, handler: UpgradeHandler): this {
    assertPath(path);
    if (this.#upgrades.has(path)) throw new Error(`upgrades at ${path} are already handled`);
    this.#upgrades.set(path, handler);
    return this;
  }

  /**
   * Keeps serving, but no longer keeps the process alive by itself (its listening socket and
   * connections stop holding the event loop open): for the time of a shutdown, when the process
   * must be able to end even if some other part never finishes closing.
   */
  unref(): void {
    this.#unref = true;
    this.#server.unref();
    for (const socket of this.#sockets) socket.unref();
  }

  /**
   * Stops accepting connections, lets requests in progress finish for up to `graceMs`, then
   * closes every connection still open (upgraded ones included). Idempotent.
   */
  close(graceMs = 1000): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const socket of this.#sockets) socket.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    })();
    return this.#closing;
  }

  #dispatch(req: IncomingMessage, res: ServerResponse): void {
    const path = requestPath(req);
    const method = req.method ?? 'GET';
    let handler: HttpHandler | undefined;
    const byMethod = this.#routes.get(path);
    if (byMethod !== undefined) {
      handler = byMethod.get(method) ?? (method === 'HEAD' ? byMethod.get('GET') : undefined);
      if (handler === undefined) {
        const allowed = [...byMethod.keys()];
        if (byMethod.has('GET') && !byMethod.has('HEAD')) allowed.push('HEAD');
        res.setHeader('Allow', allowed.join(', '));
        sendText(res, 405, 'method not allowed\n');
        return;
      }
    } else {
      handler = this.#mounts.find((m) => path.startsWith(m.prefix))?.handler;
    }
    if (handler === undefined) {
      sendText(res, 404, 'not found\n');
      return;
    }
    try {
      const result = handler(req, res);
      if (result instanceof Promise) result.catch((err: unknown) => this.#failed(res, err, method, path));
    } catch (err) {
      this.#failed(res, err, method, path);
    }
  }

  #failed(res: ServerResponse, err: unknown, method: string, path: string): void {
    this.#logger.error({ err, method, path }, 'HTTP handler failed');
    if (!res.headersSent) sendText(res, 500, 'internal error\n');
    else res.destroy();
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const handler = this.#upgrades.get(requestPath(req));
    if (handler === undefined || this.#closing !== undefined) {
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 ${handler === undefined ? '404 Not Found' : '503 Service Unavailable'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    try {
      handler(req, socket, head);
    } catch (err) {
      this.#logger.error({ err, path: requestPath(req) }, 'HTTP upgrade handler failed');
      socket.destroy();
    }
  }
}

/** Answers with a short plain-text body that no cache keeps. */
export function sendText(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** The request's path, as sent (still percent-encoded), without the query string. */
export function requestPath(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

function assertPath(path: string): void {
  if (!path.startsWith('/')) throw new TypeError(`an HTTP path starts with "/": ${path}`);
}
