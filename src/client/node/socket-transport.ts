/**
 * The Node transport of the client core (`core/transport.ts`): each stream a TCP or TLS
 * connection of its own, or — with `mux: 'yamux'` — a yamux stream on one shared connection,
 * opened again when it is lost.
 */
import type { Duplex } from 'node:stream';
import { YamuxError, YamuxSession } from '../../transport/yamux.js';
import { ConnectionClosedError } from '../core/errors.js';
import type { StreamEnd, StreamHandler, Transport, TransportStream } from '../core/transport.js';
import { openSocket, socketError, type SocketOptions } from '../socket.js';

export interface SocketTransportOptions extends SocketOptions {
  /** `yamux`: one connection carries every stream (for servers started with `--mux yamux`). Default `none`. */
  mux?: 'none' | 'yamux';
}

export class SocketTransport implements Transport {
  readonly address: string;
  readonly multiplexed: boolean;
  readonly #options: SocketTransportOptions;
  #session: YamuxSession | undefined;
  #sessionOpening: Promise<YamuxSession> | undefined;
  #closed = false;

  constructor(options: SocketTransportOptions) {
    const host = options.host ?? '127.0.0.1';
    this.address = `${host.includes(':') ? `[${host}]` : host}:${options.port ?? 9527}`;
    this.multiplexed = options.mux === 'yamux';
    this.#options = options;
  }

  async openStream(handler: StreamHandler, signal: AbortSignal): Promise<TransportStream> {
    if (!this.multiplexed) {
      const socket = await openSocket(this.#options, signal);
      return duplexStream(socket, handler, this.address, { usingTls: Boolean(this.#options.tls) });
    }
    const session = await this.#openSession(signal);
    let stream: Duplex;
    try {
      stream = session.open();
    } catch (err) {
      throw new ConnectionClosedError(`cannot open a stream to ${this.address}: ${(err as Error).message}`, { cause: err });
    }
    return duplexStream(stream, handler, this.address, { usingTls: Boolean(this.#options.tls), session });
  }

  close(): void {
    this.#closed = true;
    const session = this.#session;
    this.#session = undefined;
    if (session !== undefined) void session.close().catch(() => session.destroy());
  }

  /** The live session, or a new one: a connection whose yamux peer answered a ping. */
  async #openSession(signal: AbortSignal): Promise<YamuxSession> {
    const current = this.#session;
    if (current !== undefined && !current.closed && !goingAway.has(current)) return current;
    this.#sessionOpening ??= this.#newSession(signal).finally(() => (this.#sessionOpening = undefined));
    return this.#sessionOpening;
  }

  async #newSession(signal: AbortSignal): Promise<YamuxSession> {
    const socket = await openSocket(this.#options, signal);
    const session = new YamuxSession(socket, 'client');
    session.on('error', () => {});
    session.once('goaway', () => goingAway.add(session));
    // A server that does not speak yamux reads our ping as the start of a frame and never
    // answers; without this check every request would just time out.
    const answered = await new Promise<boolean>((resolve) => {
      const onAbort = (): void => resolve(false);
      signal.addEventListener('abort', onAbort, { once: true });
      session.ping().then(
        () => resolve(true),
        () => resolve(false),
      );
    });
    if (!answered || session.closed) {
      session.destroy();
      throw new ConnectionClosedError(`no answer to the yamux handshake from ${this.address}: is the server started with --mux yamux?`);
    }
    if (this.#closed) {
      session.destroy();
      throw new ConnectionClosedError('the client is closed');
    }
    this.#session = session;
    return session;
  }
}

/** Sessions that received go-away: no new streams there; streams ending on them are "lost". */
const goingAway = new WeakSet<YamuxSession>();

/**
 * A Node duplex (socket, yamux stream) as a `TransportStream`, reporting how it ended; `session`
 * is the yamux session carrying it, if any.
 */
export function duplexStream(
  stream: Duplex,
  handler: StreamHandler,
  address: string,
  { usingTls, session }: { usingTls: boolean; session?: YamuxSession },
): TransportStream {
  let corked = false;
  let wrote = false;
  let received = false;
  let clean = false;
  let endedByUs = false;
  let error: Error | undefined;
  stream.on('data', (chunk: Buffer) => {
    received = true;
    handler.onData(chunk);
  });
  stream.on('end', () => {
    clean = true;
    // Finish our side too, so a half-closed stream (a yamux stream, say) is fully released.
    if (!stream.writableEnded) stream.end();
  });
  stream.on('error', (err) => (error ??= err));
  stream.once('close', () => handler.onClose(howItEnded()));

  function howItEnded(): StreamEnd {
    if (session !== undefined) {
      const sessionLost = session.closed || goingAway.has(session);
      if (error instanceof YamuxError && error.code === 'ERR_YAMUX_STREAM_RESET' && !sessionLost) return { kind: 'reset', error };
      if (sessionLost) return { kind: 'lost', error: new ConnectionClosedError(`the connection to ${address} was lost${goingAway.has(session) ? ' (the server is going away)' : ''}`, { cause: error }) };
    }
    // A plaintext request to a TLS port is dropped without a word, or reset.
    const tlsExpected = wrote && !received && !endedByUs && !usingTls && session === undefined;
    const hint = tlsExpected ? 'the server closed the connection without answering: if it expects TLS, connect with TLS options (--tls-ca)' : undefined;
    if (error !== undefined) return { kind: 'lost', error: socketError(address, error, hint) };
    if (!clean) return { kind: 'lost', error: new ConnectionClosedError(`the connection to ${address} was closed`) };
    if (hint !== undefined) return { kind: 'lost', error: new ConnectionClosedError(`${address}: ${hint}`) };
    return { kind: 'end' };
  }

  return {
    write(frame) {
      wrote = true;
      if (!corked) {
        // Frames written in the same tick leave in one write.
        corked = true;
        stream.cork();
        process.nextTick(() => {
          corked = false;
          stream.uncork();
        });
      }
      stream.write(frame);
    },
    end: () => {
      endedByUs = true;
      stream.end();
    },
    destroy: () => stream.destroy(),
    pause: () => stream.pause(),
    resume: () => stream.resume(),
  };
}
