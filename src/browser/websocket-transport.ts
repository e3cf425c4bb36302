/**
 * The client core's transport over WebSocket (SPEC §6): each stream is a WebSocket connection
 * to the server's `/ws`, each frame one binary message. Works with the browser's `WebSocket`
 * and with any implementation of the same interface (the `ws` package in Node).
 *
 * WebSocket has no half-close, so ending a stream (`end`) waits until every request sent on it
 * has been answered — one message each — and then closes the connection normally; on a
 * subscription stream that is at once.
 */
import { ConnectionClosedError } from '../client/core/errors.js';
import type { StreamEnd, StreamHandler, Transport, TransportStream } from '../client/core/transport.js';

/** The events a WebSocket delivers, as far as this transport reads them. */
interface WebSocketEventMap {
  open: unknown;
  message: { data: unknown };
  error: { message?: unknown };
  close: { code: number; reason: string };
}

/** What the transport needs of a WebSocket: the browser's has it, and so has `ws`'s. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof WebSocketEventMap>(type: K, listener: (event: WebSocketEventMap[K]) => void): void;
}

/** A WebSocket class: `globalThis.WebSocket` in browsers, or e.g. `ws`'s in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;
/** Close codes that mean the server ended the stream on purpose (normal closure, going away). */
const ORDERLY = new Set([1000, 1001]);

const CLOSE_REASONS: Record<number, string> = {
  1001: 'going away',
  1002: 'protocol error',
  1003: 'unsupported data',
  1006: 'connection lost',
  1008: 'policy violation',
  1009: 'message too big',
  1011: 'server error',
  1013: 'try again later',
};

export class WebSocketTransport implements Transport {
  readonly address: string;
  readonly multiplexed = false;
  readonly #WebSocket: WebSocketConstructor;

  constructor(url: string, WebSocket: WebSocketConstructor) {
    this.address = url;
    this.#WebSocket = WebSocket;
  }

  openStream(handler: StreamHandler, signal: AbortSignal): Promise<TransportStream> {
    const url = this.address;
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(new ConnectionClosedError(`connecting to ${url} was abandoned`, { cause: signal.reason }));
        return;
      }
      let ws: WebSocketLike;
      try {
        ws = new this.#WebSocket(url);
      } catch (err) {
        reject(new ConnectionClosedError(`cannot open a WebSocket to ${url}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      ws.binaryType = 'arraybuffer';
      let opened = false;
      let detail: string | undefined;
      const onAbort = (): void => {
        ws.close();
        reject(new ConnectionClosedError(`connecting to ${url} was abandoned`, { cause: signal.reason }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      ws.addEventListener('error', (event) => {
        // Browsers say nothing about why (by design); `ws` in Node does.
        if (typeof event.message === 'string' && event.message !== '') detail = event.message;
      });
      ws.addEventListener('close', (event) => {
        if (opened) return;
        signal.removeEventListener('abort', onAbort);
        const why = detail ?? `the server refused or could not be reached (close code ${event.code})`;
        reject(
          new ConnectionClosedError(
            `cannot open a WebSocket to ${url}: ${why}. A page from another origin must be listed in the server's http.allowed_origins`,
          ),
        );
      });
      ws.addEventListener('open', () => {
        opened = true;
        signal.removeEventListener('abort', onAbort);
        resolve(new WebSocketStream(ws, url, handler));
      });
    });
  }

  close(): void {
    // Each stream is a connection of its own; nothing is shared.
  }
}

/** One open WebSocket as a `TransportStream`. */
class WebSocketStream implements TransportStream {
  readonly #ws: WebSocketLike;
  readonly #url: string;
  readonly #handler: StreamHandler;
  /** Frames sent, and messages received: when the second catches up, every request is answered. */
  #sent = 0;
  #received = 0;
  #ending = false;
  #finished = false;
  #paused = false;
  /** Messages that arrived while paused (a WebSocket cannot stop its sender). */
  #held: Uint8Array[] = [];

  constructor(ws: WebSocketLike, url: string, handler: StreamHandler) {
    this.#ws = ws;
    this.#url = url;
    this.#handler = handler;
    ws.addEventListener('message', (event) => this.#onMessage(event.data));
    ws.addEventListener('close', (event) => this.#finish(this.#howItEnded(event.code, event.reason)));
  }

  write(frame: Uint8Array): void {
    if (this.#ws.readyState !== OPEN || this.#ending) return;
    this.#ws.send(frame);
    this.#sent++;
  }

  end(): void {
    this.#ending = true;
    this.#closeIfAnswered();
  }

  destroy(): void {
    if (this.#finished) return;
    this.#ws.close(1000, 'closed by the client');
    // At once, as promised: the closing handshake that follows is of no interest.
    queueMicrotask(() => this.#finish({ kind: 'lost', error: new ConnectionClosedError(`the connection to ${this.#url} was closed`) }));
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    const held = this.#held;
    this.#held = [];
    for (const data of held) {
      if (this.#finished || this.#paused) {
        this.#held.push(data);
        continue;
      }
      this.#handler.onData(data);
    }
  }

  #onMessage(data: unknown): void {
    if (this.#finished) return;
    if (!(data instanceof ArrayBuffer)) {
      this.#ws.close(1003, 'protokv takes binary messages only');
      this.#finish({ kind: 'lost', error: new ConnectionClosedError(`${this.#url} sent a text message; is it a protokv /ws endpoint?`) });
      return;
    }
    this.#received++;
    const bytes = new Uint8Array(data);
    if (this.#paused) this.#held.push(bytes);
    else this.#handler.onData(bytes);
    this.#closeIfAnswered();
  }

  #closeIfAnswered(): void {
    if (this.#ending && this.#received >= this.#sent && this.#ws.readyState === OPEN) this.#ws.close(1000);
  }

  #howItEnded(code: number, reason: string): StreamEnd {
    if (ORDERLY.has(code)) return { kind: 'end' };
    const name = CLOSE_REASONS[code];
    const text = [name, reason].filter((s) => s !== undefined && s !== '').join(': ');
    return { kind: 'lost', error: new ConnectionClosedError(`the WebSocket to ${this.#url} closed with code ${code}${text === '' ? '' : ` (${text})`}`) };
  }

  #finish(end: StreamEnd): void {
    if (this.#finished) return;
    this.#finished = true;
    // Messages held by a pause are still the stream's: deliver them before its end.
    const held = this.#held;
    this.#held = [];
    for (const data of held) this.#handler.onData(data);
    this.#handler.onClose(end);
  }
}
