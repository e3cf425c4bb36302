/**
 * `GET /ws` (SPEC §6): protokv over WebSocket, for browsers. Each binary message carries one
 * frame, header included, and one WebSocket connection is one protokv stream, handed to the
 * protokv server like any TCP connection (`ProtokvServer.adopt`), so every command, pipelining,
 * subscriptions, limits and statuses behave exactly as on TCP.
 *
 * Beyond TCP, a WebSocket connection is refused before the upgrade (403) when a web page from
 * another site opened it: its `Origin` must be the console's own origin or one listed in
 * `http.allowed_origins`. A text message closes the connection with 1003, a message larger than
 * the maximum frame size with 1009.
 *
 * The WebSocket library assembles each message before the stream server sees it, so the input
 * limits of SPEC 4 are kept here for the bytes of a message still arriving: they count against
 * the server-wide input budget, and a message must complete within the frame time limit (else
 * 1008 and the connection is closed), as a frame must on TCP.
 */
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/frame.js';
import { isLoopbackHost, normalizeOrigin } from '../config.js';
import { RateLimitedLog, silentLogger, type Logger } from '../logger.js';
import { FrameTimer } from './frame-timer.js';
import type { InputBudget } from './input-budget.js';
import { CloseCode, WebSocketStream } from './websocket-stream.js';
import type { Instrumentation } from '../observability/instrumentation.js';
import type { HttpListener } from '../http/listener.js';

/** The path the endpoint answers on. */
export const WEBSOCKET_PATH = '/ws';

/** Who may open a WebSocket: the rule behind the `Origin` check. */
export interface OriginPolicy {
  /** Origins allowed besides the console's own, normalized (`normalizeOrigin`). */
  allowedOrigins: Iterable<string>;
  /** The listener serves HTTPS, so the console's own origin is `https://` + Host. */
  secure: boolean;
  /**
   * The listener is bound to a loopback address. Its own origin must then name a loopback host:
   * a page from a name that merely resolves to 127.0.0.1 (DNS rebinding) is another site.
   */
  loopback: boolean;
}

/**
 * Why a WebSocket upgrade is refused, or `undefined` when it is allowed. A request without an
 * `Origin` header does not come from a web page (browsers always send one on WebSocket
 * upgrades), so it is not a cross-site request and is allowed, like a TCP connection.
 */
export function originRefusal(origin: string | undefined, host: string | undefined, policy: OriginPolicy): string | undefined {
  if (origin === undefined) return undefined;
  const normalized = normalizeOrigin(origin);
  if (normalized !== undefined) {
    for (const allowed of policy.allowedOrigins) if (allowed === normalized) return undefined;
    const own = host === undefined ? undefined : normalizeOrigin(`${policy.secure ? 'https' : 'http'}://${host}`);
    if (own !== undefined && own === normalized && (!policy.loopback || isLoopbackHost(new URL(own).hostname))) return undefined;
  }
  return `Origin ${origin} may not open ${WEBSOCKET_PATH}: it is not this console's origin nor listed in http.allowed_origins`;
}

export interface WebSocketEndpointOptions extends OriginPolicy {
  /** Serves each accepted connection as one protokv stream (normally `ProtokvServer.adopt`). */
  accept(stream: Duplex): void;
  /** Largest frame accepted; a larger message closes the connection with 1009. Default 64 MiB. */
  maxFrameSize?: number;
  /** Close connections idle this long (ms); 0 disables. Default 0. */
  idleTimeoutMs?: number;
  /** The server-wide input budget (normally `ProtokvServer.inputBudget`) that messages in progress count against. */
  inputBudget?: InputBudget;
  /** A message must arrive within this many ms of its first byte (plus a second per MiB); 0: no limit. Default 10 s. */
  frameTimeoutMs?: number;
  logger?: Logger;
  /** Counts refused upgrades (reason `origin`); accepted ones are counted where they are adopted. */
  instrumentation?: Instrumentation | null;
}

const DEFAULT_FRAME_TIMEOUT_MS = 10_000;
/** After a 1008 for a message not completed in time, the peer has this long to close its side. */
const LINGER_MS = 1000;

/** The `/ws` endpoint: hand it the HTTP listener's `upgrade` events. */
export class WebSocketEndpoint {
  readonly #options: WebSocketEndpointOptions;
  readonly #logger: Logger;
  readonly #wss: WebSocketServer;
  readonly #allowed: ReadonlySet<string>;
  readonly #streams = new Set<WebSocketStream>();
  readonly #refusals: RateLimitedLog;
  readonly #slowMessages: RateLimitedLog;
  #closing = false;

  constructor(options: WebSocketEndpointOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger();
    this.#allowed = new Set(options.allowedOrigins);
    this.#refusals = new RateLimitedLog(this.#logger, 'warn', 'WebSocket refused: origin not allowed');
    this.#slowMessages = new RateLimitedLog(this.#logger, 'info', 'WebSocket message not completed in time; closing the connection');
    const policy: OriginPolicy = { allowedOrigins: this.#allowed, secure: options.secure, loopback: options.loopback };
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      // A message is one frame: its 4-byte header and a payload of at most the maximum frame size.
      maxPayload: (options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE) + 4,
      // Frames over 1436 bytes are gzip already; deflating again would cost CPU for nothing.
      perMessageDeflate: false,
      verifyClient: (info: { origin: string | undefined; req: IncomingMessage }, callback) => {
        const refusal = originRefusal(info.req.headers.origin, info.req.headers.host, policy);
        if (refusal === undefined) {
          callback(true);
          return;
        }
        this.#refusals.log({ origin: info.req.headers.origin, host: info.req.headers.host });
        this.#options.instrumentation?.connectionRejected('origin');
        callback(false, 403, refusal);
      },
    });
  }

  /** Connections open right now. */
  get connectionCount(): number {
    return this.#streams.size;
  }

  /** Serves `/ws` on `listener`: its upgrade requests there become protokv streams. */
  attach(listener: HttpListener): this {
    listener.onUpgrade(WEBSOCKET_PATH, (req, socket, head) => this.handleUpgrade(req, socket, head));
    return this;
  }

  /** Handles an HTTP `upgrade` event: `/ws` becomes a protokv stream, anything else a 404. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (pathOf(req.url) !== WEBSOCKET_PATH) {
      refuseUpgrade(socket, 404, `No WebSocket endpoint at ${pathOf(req.url)}; protokv answers on ${WEBSOCKET_PATH}`);
      return;
    }
    if (this.#closing) {
      refuseUpgrade(socket, 503, 'The server is shutting down');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, socket));
  }

  /**
   * Stops accepting upgrades; open connections end with 1001 (going away) once the protokv
   * server's shutdown has drained them.
   */
  close(): void {
    this.#closing = true;
    for (const stream of this.#streams) stream.setCloseStatus(CloseCode.GOING_AWAY, 'server shutting down');
  }

  #onConnection(ws: WebSocket, socket: Duplex): void {
    const raw = socket instanceof net.Socket ? socket : undefined;
    const stream = new WebSocketStream(ws, { socket: raw });
    if (this.#closing) stream.setCloseStatus(CloseCode.GOING_AWAY, 'server shutting down');
    this.#streams.add(stream);
    stream.once('close', () => this.#streams.delete(stream));
    const idle = this.#options.idleTimeoutMs;
    if (idle && raw !== undefined) {
      raw.setTimeout(idle, () => {
        this.#logger.info({ idleTimeoutMs: idle }, 'idle timeout; closing the WebSocket connection');
        stream.destroy();
      });
    }
    if (raw !== undefined) this.#guardInput(ws, raw, stream);
    this.#options.accept(stream);
  }

  /**
   * Counts the bytes of the message in progress against the input budget and times it. Raw
   * socket reads are seen before the WebSocket library parses them; each message (or control
   * frame) it completes ends the count. Bytes of a following message that arrived in the same
   * read are not counted until its next read: an undercount of one read at most.
   */
  #guardInput(ws: WebSocket, raw: net.Socket, stream: WebSocketStream): void {
    const budget = this.#options.inputBudget;
    let message = 0;
    let pending = 0;
    const timer = new FrameTimer(this.#options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS, () => {
      if (ws.isPaused) {
        // Not read because the server holds it back (its answers are not being read): the clock
        // starts again once reading does, as for a frame on TCP.
        timer.await(++message, pending);
        return;
      }
      this.#slowMessages.log({ receivedBytes: pending, frameTimeoutMs: timer.timeoutMs });
      stream.closeWith(CloseCode.POLICY_VIOLATION, 'message not completed in time');
      setTimeout(() => stream.destroy(), LINGER_MS).unref();
    });
    const completed = (): void => {
      budget?.release(pending);
      pending = 0;
      message++;
      timer.stop();
    };
    raw.prependListener('data', (chunk: Buffer) => {
      pending += chunk.length;
      budget?.charge(chunk.length);
      timer.await(message, pending);
    });
    ws.on('message', completed);
    ws.on('ping', completed);
    ws.on('pong', completed);
    stream.once('close', () => {
      budget?.release(pending);
      pending = 0;
      timer.dispose();
    });
  }
}

function pathOf(url: string | undefined): string {
  const path = (url ?? '/').split('?', 1)[0];
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}

/** Answers an upgrade request we will not serve with a plain HTTP error, then closes. */
function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  const reason = status === 404 ? 'Not Found' : 'Service Unavailable';
  socket.on('error', () => {});
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}
