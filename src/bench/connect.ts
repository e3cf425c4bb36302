/**
 * Opening the benchmark's streams: plain TCP or TLS connections, one stream each, one
 * connection carrying every stream over yamux, or one WebSocket per stream.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { BenchMux } from './options.js';
import { openSocket } from '../client/socket.js';

/** Where and how to connect; TLS material is already loaded. */
export interface BenchTarget {
  host: string;
  port: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string };
  mux: BenchMux;
  /** WebSockets to `/ws` at host:port (the HTTP listener), `wss:` with TLS. */
  websocket?: boolean;
  connectTimeoutMs?: number;
}

/** Reads the TLS files named on the command line. */
export async function loadTls(files: { ca?: string; cert?: string; key?: string; servername?: string }): Promise<NonNullable<BenchTarget['tls']>> {
  const read = (f: string | undefined) => (f === undefined ? undefined : readFile(f));
  const [ca, cert, key] = await Promise.all([read(files.ca), read(files.cert), read(files.key)]);
  return { ca, cert, key, servername: files.servername };
}

/** Streams for a run, and how to release them. */
export interface StreamSet {
  /** Opened streams (may be fewer than asked when some connections failed). */
  streams: Duplex[];
  /** Why the missing streams could not be opened. */
  failures: Error[];
  /** Opens one more stream, for setup work such as pre-loading. */
  extra(): Promise<Duplex>;
  /** Ends every stream and connection. */
  close(): Promise<void>;
}

/** Opens `count` streams to the target. */
export async function openStreams(target: BenchTarget, count: number): Promise<StreamSet> {
  if (target.mux === 'yamux') return openYamuxStreams(target, count);
  return openEachStream(target, count, target.websocket === true ? openWebSocketStream : openSocket);
}

async function openEachStream(target: BenchTarget, count: number, open: (target: BenchTarget) => Promise<Duplex>): Promise<StreamSet> {
  const settled = await Promise.allSettled(Array.from({ length: count }, () => open(target)));
  const streams: Duplex[] = [];
  const failures: Error[] = [];
  for (const s of settled) {
    if (s.status === 'fulfilled') streams.push(s.value);
    else failures.push(s.reason instanceof Error ? s.reason : new Error(String(s.reason)));
  }
  const extras: Duplex[] = [];
  return {
    streams,
    failures,
    async extra() {
      const s = await open(target);
      extras.push(s);
      return s;
    },
    close: () => closeAll([...streams, ...extras]),
  };
}

async function openYamuxStreams(target: BenchTarget, count: number): Promise<StreamSet> {
  const { YamuxSession } = await import('../transport/yamux.js');
  const socket = await openSocket(target);
  const session = new YamuxSession(socket, 'client', { keepAliveMs: false });
  session.on('error', () => {});
  // A server without yamux reads our frames as a protokv frame header and waits forever; a ping
  // tells the two apart before any load is generated.
  const timeout = target.connectTimeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      session.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no yamux answer within ${timeout} ms (is the server listening with --mux yamux?)`)), timeout);
      }),
    ]);
  } catch (err) {
    session.destroy();
    socket.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const streams: Duplex[] = Array.from({ length: count }, () => session.open());
  const extras: Duplex[] = [];
  return {
    streams,
    failures: [],
    extra() {
      const s = session.open();
      extras.push(s);
      return Promise.resolve(s);
    },
    async close() {
      await closeAll([...streams, ...extras]);
      await Promise.race([session.close(), delay(2000)]);
      session.destroy();
      socket.destroy();
    },
  };
}

/** Half-closes each stream so the server finishes cleanly, and destroys laggards. */
async function closeAll(streams: Duplex[]): Promise<void> {
  await Promise.all(
    streams.map(async (s) => {
      if (s.destroyed) return;
      const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
      s.on('error', () => {});
      s.resume();
      s.end();
      await Promise.race([closed, delay(2000)]);
      s.destroy();
    }),
  );
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * One WebSocket to `/ws`, as a byte stream of frames (each frame one message); frames written
 * together leave in one socket write, as they do over TCP.
 */
async function openWebSocketStream(target: BenchTarget): Promise<Duplex> {
  const [{ default: WebSocket }, { WebSocketStream }] = await Promise.all([import('ws'), import('../transport/websocket-stream.js')]);
  const tls = target.tls;
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const url = `${tls === undefined ? 'ws' : 'wss'}://${host}:${target.port}/ws`;
  const timeout = target.connectTimeoutMs ?? 10_000;
  const ws = new WebSocket(url, {
    perMessageDeflate: false,
    handshakeTimeout: timeout,
    ...(tls === undefined ? {} : { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername }),
  });
  let socket: Socket | undefined;
  ws.once('upgrade', (response: IncomingMessage) => {
    if (response.socket instanceof Socket) socket = response.socket;
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_request, response: IncomingMessage) => {
      response.resume();
      reject(new Error(`${url} answered HTTP ${response.statusCode} instead of upgrading to WebSocket`));
    });
  });
  socket?.setNoDelay(true);
  return new WebSocketStream(ws, { socket });
}
