/**
 * Opening the benchmark's streams: plain TCP or TLS connections, one stream each, or one
 * connection carrying every stream over yamux.
 */
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import type { BenchMux } from './options.js';
import { openSocket } from '../client/socket.js';

/** Where and how to connect; TLS material is already loaded. */
export interface BenchTarget {
  host: string;
  port: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string };
  mux: BenchMux;
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
  return target.mux === 'yamux' ? openYamuxStreams(target, count) : openPlainStreams(target, count);
}

async function openPlainStreams(target: BenchTarget, count: number): Promise<StreamSet> {
  const settled = await Promise.allSettled(Array.from({ length: count }, () => openSocket(target)));
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
      const s = await openSocket(target);
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
