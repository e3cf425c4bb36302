import { test } from 'node:test';
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Duplex, type Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { yamux } from '@chainsafe/libp2p-yamux';
import { AbstractMessageStream, type SendResult } from '@libp2p/utils';
import { logger } from '@libp2p/logger';
import type { Stream as Libp2pStream } from '@libp2p/interface';
import { GoAwayCode, YamuxError, YamuxSession, type YamuxOptions, type YamuxStream } from '../src/transport/yamux.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const WINDOW = 256 * KiB;
const TIMEOUT = { timeout: 30_000 };

// ---------------------------------------------------------------------------------------------
// Helpers

/** Two ends of one real TCP connection over 127.0.0.1. */
async function tcpPair(): Promise<{ client: net.Socket; server: net.Socket }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await new Promise((resolve) => listener.once('listening', resolve));
  const { port } = listener.address() as AddressInfo;
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
  const client = net.connect(port, '127.0.0.1');
  const [server] = await Promise.all([accepted, new Promise((resolve) => client.once('connect', resolve))]);
  listener.close();
  return { client, server };
}

interface SessionPair {
  client: YamuxSession;
  server: YamuxSession;
}

interface PairOptions {
  client?: YamuxOptions;
  server?: YamuxOptions;
  /** Puts something between each session and its socket. */
  wrap?: (socket: net.Socket) => Duplex;
}

/** Runs `body` with our client session connected to our server session, then tears both down. */
async function withSessions(options: PairOptions, body: (pair: SessionPair) => Promise<void>): Promise<void> {
  const sockets = await tcpPair();
  const wrap = options.wrap ?? ((socket: net.Socket) => socket);
  const pair = {
    client: new YamuxSession(wrap(sockets.client), 'client', options.client),
    server: new YamuxSession(wrap(sockets.server), 'server', options.server),
  };
  try {
    await body(pair);
  } finally {
    pair.client.destroy();
    pair.server.destroy();
  }
}

/** Every inbound stream echoes what it reads and ends when the peer ends. */
function echo(session: YamuxSession): void {
  session.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.pipe(stream);
  });
}

/** Reads a stream to its end (without destroying it, so its writable side stays usable). */
function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
    stream.once('close', () => reject(new Error('stream closed before its end')));
  });
}

function closed(emitter: { once(event: 'close', listener: () => void): unknown }): Promise<void> {
  return new Promise((resolve) => emitter.once('close', () => resolve()));
}

/** Waits until `condition` holds, checking on every turn of the event loop (tests carry their own timeouts). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await delay(1);
}

/** Writes `data` in slices of random sizes, honouring back-pressure, then ends. */
async function writeInPieces(stream: YamuxStream, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const size = 1 + Math.floor(Math.random() * 96 * KiB);
    const ok = stream.write(data.subarray(offset, offset + size));
    offset += size;
    if (!ok) await new Promise((resolve) => stream.once('drain', resolve));
  }
  stream.end();
}

/** A raw yamux frame, encoded here by hand from the spec so tests don't trust the module's own codec. */
function rawFrame(type: number, flags: number, streamId: number, length: number, payload?: Buffer): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt8(0, 0);
  header.writeUInt8(type, 1);
  header.writeUInt16BE(flags, 2);
  header.writeUInt32BE(streamId, 4);
  header.writeUInt32BE(length, 8);
  return payload ? Buffer.concat([header, payload]) : header;
}

interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** Splits a whole byte sequence into frames, skipping data payloads. */
function parseRawFrames(bytes: Buffer): RawFrame[] {
  const frames: RawFrame[] = [];
  let offset = 0;
  while (offset + 12 <= bytes.length) {
    const frame = {
      type: bytes.readUInt8(offset + 1),
      flags: bytes.readUInt16BE(offset + 2),
      streamId: bytes.readUInt32BE(offset + 4),
      length: bytes.readUInt32BE(offset + 8),
    };
    frames.push(frame);
    offset += 12 + (frame.type === 0 ? frame.length : 0);
  }
  return frames;
}

/** Everything a socket receives until the peer closes it. */
function collect(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * A socket wrapper whose every read is exactly one byte: object mode keeps Node from merging
 * the pieces again, so the session sees every header and payload split at every byte.
 */
class OneByteReads extends Duplex {
  readonly #socket: net.Socket;

  constructor(socket: net.Socket) {
    super({ readableObjectMode: true });
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (let i = 0; i < chunk.length; i++) this.push(chunk.subarray(i, i + 1));
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#socket.write(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#socket.destroy();
    callback(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Our client ↔ our server

test('echo on 200 concurrent streams', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    echo(pair.server);
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const stream = pair.client.open();
        const payload = randomBytes(1 + i * 97);
        const received = readAll(stream);
        stream.end(payload);
        assert.ok((await received).equals(payload), `stream ${stream.id} echoed wrong bytes`);
      }),
    );
  });
});

test('1 MiB each way per stream crosses many window updates', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    echo(pair.server);
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const stream = pair.client.open();
        const payload = randomBytes(MiB);
        const received = readAll(stream);
        await writeInPieces(stream, payload);
        assert.ok((await received).equals(payload));
      }),
    );
  });
});

test('frames split at every byte still parse (headers and payloads)', TIMEOUT, async () => {
  await withSessions({ wrap: (socket) => new OneByteReads(socket) }, async (pair) => {
    echo(pair.server);
    const rtt = await pair.client.ping();
    assert.ok(rtt >= 0);
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        const stream = pair.client.open();
        const payload = randomBytes(3000);
        const received = readAll(stream);
        stream.write(payload.subarray(0, 1000));
        stream.write(payload.subarray(1000, 1001));
        stream.end(payload.subarray(1001));
        assert.ok((await received).equals(payload));
      }),
    );
  });
});

test('end() half-closes: the other side reads to its end and can still answer', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    pair.server.on('stream', (stream) => {
      void readAll(stream).then((request) => {
        assert.equal(stream.writable, true);
        stream.end(Buffer.concat([Buffer.from('got '), request]));
      });
    });
    const stream = pair.client.open();
    const streamClosed = closed(stream);
    const response = readAll(stream);
    stream.end('hello');
    await new Promise((resolve) => stream.once('finish', resolve));
    assert.equal((await response).toString(), 'got hello');
    await streamClosed; // both sides ended: the stream closes by itself, without a reset
    assert.equal(stream.errored, null);
  });
});

test('destroy() resets the stream on the other side', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    const serverStream = new Promise<YamuxStream>((resolve) => pair.server.once('stream', resolve));
    const stream = pair.client.open();
    stream.write('x');
    const inbound = await serverStream;
    const failed = new Promise<Error>((resolve) => inbound.once('error', resolve));
    stream.destroy();
    const err = await failed;
    assert.ok(err instanceof YamuxError);
    assert.equal(err.code, 'ERR_YAMUX_STREAM_RESET');
  });
});

test('a reset stream nobody listens to for errors closes quietly, and its pending write fails', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    pair.server.on('stream', (stream) => stream.once('data', () => stream.destroy()));
    const stream = pair.client.open();
    const writeFailed = new Promise<Error | null | undefined>((resolve) => {
      stream.write('first', () => {
        // Far more than the window: the write cannot complete before the reset arrives.
        stream.write(Buffer.alloc(2 * WINDOW), resolve);
      });
    });
    // Had the reset been emitted as 'error' with no listener, the process would have crashed.
    await closed(stream);
    assert.equal(stream.destroyed, true);
    const err = await writeFailed;
    assert.ok(err instanceof YamuxError);
  });
});

test('ping is answered in both directions', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    const [a, b] = await Promise.all([pair.client.ping(), pair.server.ping()]);
    assert.ok(a >= 0 && b >= 0);
  });
});

test('go-away stops new streams while existing ones finish', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    echo(pair.server);
    const existing = pair.client.open();
    const existingEcho = readAll(existing);
    existing.write('before ');
    await new Promise((resolve) => existing.once('readable', resolve)); // the server has the stream

    const goaway = new Promise<number>((resolve) => pair.client.once('goaway', resolve));
    pair.server.goAway();
    // Opened before the go-away reaches the client: the server refuses it with a reset.
    const late = pair.client.open();
    const refused = new Promise<Error>((resolve) => late.once('error', resolve));
    assert.equal(((await refused) as YamuxError).code, 'ERR_YAMUX_STREAM_RESET');

    assert.equal(await goaway, GoAwayCode.Normal);
    assert.throws(() => pair.client.open(), (err: YamuxError) => err.code === 'ERR_YAMUX_GO_AWAY');
    assert.throws(() => pair.server.open(), (err: YamuxError) => err.code === 'ERR_YAMUX_GO_AWAY');

    existing.end('after');
    assert.equal((await existingEcho).toString(), 'before after');

    // Graceful close waits for open streams, which are all finished now.
    const serverClosed = closed(pair.server);
    await pair.client.close();
    await serverClosed;
    assert.equal(pair.client.closed, true);
    assert.equal(pair.server.closed, true);
  });
});

test('streams over maxStreams are refused with a reset', TIMEOUT, async () => {
  await withSessions({ server: { maxStreams: 2 } }, async (pair) => {
    echo(pair.server);
    const first = pair.client.open();
    const second = pair.client.open();
    const third = pair.client.open();
    const refused = new Promise<Error>((resolve) => third.once('error', resolve));
    assert.equal(((await refused) as YamuxError).code, 'ERR_YAMUX_STREAM_RESET');
    const echoes = [readAll(first), readAll(second)];
    first.end('one');
    second.end('two');
    assert.deepEqual((await Promise.all(echoes)).map(String), ['one', 'two']);
    // Finished streams free their slots.
    const fourth = pair.client.open();
    const fourthEcho = readAll(fourth);
    fourth.end('four');
    assert.equal((await fourthEcho).toString(), 'four');
  });
});

test('when the connection drops, every stream is destroyed without crashing anyone', TIMEOUT, async () => {
  await withSessions({}, async (pair) => {
    const inbound: YamuxStream[] = [];
    pair.server.on('stream', (stream) => inbound.push(stream)); // no 'error' listeners at all
    const streams = [pair.client.open(), pair.client.open()];
    for (const stream of streams) stream.write('x');
    await until(() => inbound.length === 2);
    const serverClosed = closed(pair.server);
    pair.client.destroy();
    await serverClosed;
    await Promise.all([...inbound, ...streams].map((s) => (s.destroyed ? Promise.resolve() : closed(s))));
    assert.ok([...inbound, ...streams].every((s) => s.destroyed));
    assert.throws(() => pair.server.open(), (err: YamuxError) => err.code === 'ERR_YAMUX_SESSION_CLOSED');
  });
});

/**
 * A client writes 10 MiB to a server stream nobody reads: its write callbacks must stop once the
 * receive window is used up, and the reader must buffer no more than that window.
 */
async function checkBackPressure(window: number): Promise<void> {
  const options = window === WINDOW ? {} : { server: { initialWindow: window } };
  await withSessions(options, async (pair) => {
    let inbound: YamuxStream | undefined;
    pair.server.on('stream', (stream) => (inbound = stream)); // never read
    const stream = pair.client.open();
    const chunk = 64 * KiB;
    const total = 10 * MiB;
    let completed = 0;
    let sawFalse = false;
    for (let sent = 0; sent < total; sent += chunk) {
      const ok = stream.write(Buffer.alloc(chunk, sent / chunk), (err) => {
        if (!err) completed += chunk;
      });
      if (!ok) sawFalse = true;
    }
    assert.equal(sawFalse, true);
    await until(() => inbound !== undefined && inbound.readableLength >= window);
    await delay(200); // give a misbehaving implementation time to overshoot
    assert.ok(completed <= window + chunk, `writer completed ${completed} bytes`);
    assert.ok(inbound!.readableLength <= window, `reader buffered ${inbound!.readableLength} bytes`);

    // Once the reader reads, everything flows.
    const received = readAll(inbound!);
    stream.end();
    const data = await received;
    assert.equal(data.length, total);
    assert.equal(completed, total);
    assert.equal(data[total - 1], total / chunk - 1);
  });
}

test('back-pressure: a stream nobody reads stops its writer at the window', TIMEOUT, async () => {
  await checkBackPressure(WINDOW);
});

test('back-pressure with a larger initialWindow, announced to the peer when the stream opens', TIMEOUT, async () => {
  await checkBackPressure(MiB);
});

// ---------------------------------------------------------------------------------------------
// Raw frames against our server

test('raw: a ping with SYN is answered with ACK echoing the opaque value', TIMEOUT, async () => {
  const sockets = await tcpPair();
  const server = new YamuxSession(sockets.server, 'server', { keepAliveMs: false });
  try {
    const reply = new Promise<Buffer>((resolve) => sockets.client.once('data', resolve));
    sockets.client.write(rawFrame(2, 1, 0, 0xdeadbeef));
    const [frame] = parseRawFrames(await reply);
    assert.deepEqual(frame, { type: 2, flags: 2, streamId: 0, length: 0xdeadbeef });
  } finally {
    server.destroy();
    sockets.client.destroy();
  }
});

test('raw: a peer sending past its window gets go-away(protocol error)', TIMEOUT, async () => {
  const sockets = await tcpPair();
  const server = new YamuxSession(sockets.server, 'server', { keepAliveMs: false });
  try {
    server.on('stream', (stream) => stream.on('error', () => undefined));
    const failure = new Promise<Error>((resolve) => server.once('error', resolve));
    const received = collect(sockets.client);
    sockets.client.write(rawFrame(1, 1, 1, 0)); // SYN for stream 1
    sockets.client.write(rawFrame(0, 0, 1, WINDOW, Buffer.alloc(WINDOW))); // exactly the window: fine
    sockets.client.write(rawFrame(0, 0, 1, 1, Buffer.alloc(1))); // one byte more: violation
    const err = await failure;
    assert.equal((err as YamuxError).code, 'ERR_YAMUX_PROTOCOL');
    assert.equal(server.closed, true);
    const frames = parseRawFrames(await received);
    assert.deepEqual(frames[0], { type: 1, flags: 2, streamId: 1, length: 0 }); // ACK
    assert.deepEqual(frames.at(-1), { type: 3, flags: 0, streamId: 0, length: GoAwayCode.ProtocolError });
  } finally {
    server.destroy();
    sockets.client.destroy();
  }
});

for (const [what, frame] of [
  ['an unknown version', Buffer.from([1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])],
  ['an unknown frame type', rawFrame(7, 0, 0, 0)],
  ['a stream id of our own parity', rawFrame(1, 1, 2, 0)],
] as const) {
  test(`raw: ${what} is a protocol error`, TIMEOUT, async () => {
    const sockets = await tcpPair();
    const server = new YamuxSession(sockets.server, 'server', { keepAliveMs: false });
    try {
      server.on('stream', (stream) => stream.on('error', () => undefined));
      const received = collect(sockets.client);
      sockets.client.write(frame);
      const frames = parseRawFrames(await received);
      assert.deepEqual(frames.at(-1), { type: 3, flags: 0, streamId: 0, length: GoAwayCode.ProtocolError });
      assert.equal(server.closed, true);
    } finally {
      server.destroy();
      sockets.client.destroy();
    }
  });
}

test('raw: a data frame carrying FIN ends the stream after its payload', TIMEOUT, async () => {
  const sockets = await tcpPair();
  const server = new YamuxSession(sockets.server, 'server', { keepAliveMs: false });
  try {
    const inbound = new Promise<YamuxStream>((resolve) => server.once('stream', resolve));
    // SYN, data and FIN in a single frame, then a second stream's SYN in the same write.
    sockets.client.write(Buffer.concat([rawFrame(0, 1 | 4, 3, 5, Buffer.from('hello')), rawFrame(1, 1, 5, 0)]));
    assert.equal((await readAll(await inbound)).toString(), 'hello');
  } finally {
    server.destroy();
    sockets.client.destroy();
  }
});

// ---------------------------------------------------------------------------------------------
// Interop with an independent implementation (@chainsafe/libp2p-yamux)

/** Presents a TCP socket as the libp2p "message stream" its yamux muxer runs over. */
class SocketMessageStream extends AbstractMessageStream {
  readonly #socket: net.Socket;

  constructor(socket: net.Socket, direction: 'inbound' | 'outbound') {
    super({ log: logger('protokv:test:yamux'), direction });
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.safeDispatchEvent('drain'));
    socket.on('error', () => undefined);
    socket.on('close', () => this.onTransportClosed());
  }

  sendData(data: Parameters<AbstractMessageStream['sendData']>[0]): SendResult {
    let canSendMore = true;
    for (const piece of data) canSendMore = this.#socket.write(piece);
    return { sentBytes: data.byteLength, canSendMore };
  }

  sendReset(): void {
    this.#socket.resetAndDestroy();
  }

  sendPause(): void {
    this.#socket.pause();
  }

  sendResume(): void {
    this.#socket.resume();
  }

  close(): Promise<void> {
    this.#socket.end();
    return Promise.resolve();
  }
}

async function libp2pEcho(stream: Libp2pStream): Promise<void> {
  for await (const chunk of stream) {
    if (!stream.send(chunk)) await stream.onDrain();
  }
  await stream.close();
}

async function libp2pReadAll(stream: Libp2pStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk.subarray()));
  return Buffer.concat(chunks);
}

const INTEROP_STREAMS = 100;

// libp2p-yamux 8 expects Node 22's Promise.withResolvers; Node 20 lacks it.
const promiseStatics = Promise as unknown as { withResolvers?: () => unknown };
promiseStatics.withResolvers ??= () => {
  let resolve: unknown;
  let reject: unknown;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

test('interop: our client against a libp2p-yamux server, 100 streams × 1 MiB', TIMEOUT, async () => {
  const sockets = await tcpPair();
  const theirs = yamux()().createStreamMuxer(new SocketMessageStream(sockets.server, 'inbound'));
  theirs.addEventListener('stream', (evt) => void libp2pEcho(evt.detail).catch(() => undefined));
  const ours = new YamuxSession(sockets.client, 'client');
  try {
    await Promise.all(
      Array.from({ length: INTEROP_STREAMS }, async () => {
        const stream = ours.open();
        const payload = randomBytes(MiB);
        const received = readAll(stream);
        await writeInPieces(stream, payload);
        assert.ok((await received).equals(payload), `stream ${stream.id} echoed wrong bytes`);
      }),
    );
    assert.ok((await ours.ping()) >= 0);
    assert.ok((await theirs.ping()) >= 0);
  } finally {
    ours.destroy();
    theirs.abort(new Error('test over'));
  }
});

test('interop: a libp2p-yamux client against our server, 100 streams × 1 MiB', TIMEOUT, async () => {
  const sockets = await tcpPair();
  const ours = new YamuxSession(sockets.server, 'server');
  echo(ours);
  const theirs = yamux()().createStreamMuxer(new SocketMessageStream(sockets.client, 'outbound'));
  try {
    await Promise.all(
      Array.from({ length: INTEROP_STREAMS }, async () => {
        const stream = await theirs.createStream();
        const payload = randomBytes(MiB);
        const received = libp2pReadAll(stream);
        for (let offset = 0; offset < payload.length; offset += 64 * KiB) {
          if (!stream.send(payload.subarray(offset, offset + 64 * KiB))) await stream.onDrain();
        }
        await stream.close();
        assert.ok((await received).equals(payload), `stream ${stream.id} echoed wrong bytes`);
      }),
    );
  } finally {
    theirs.abort(new Error('test over'));
    ours.destroy();
  }
});
