/**
 * Property-based and fuzz tests (SPEC 1.2, 1.4, 1.5, 4): the frame decoder under arbitrary
 * splitting, noise, truncation and corruption; the server under hostile payloads on an in-memory
 * stream and over TCP; the hash commands against a reference model; and many connections throwing
 * random and hostile frames at a live server, which must answer each as predicted, keep serving,
 * and give back its connections and memory.
 *
 * fast-check picks a new seed each run and prints it with any counterexample; the socket fuzzer
 * takes `PROTOKV_FUZZ_SEED` to replay a run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as streams from 'node:stream';
import type { Duplex } from 'node:stream';
import net from 'node:net';
import { once } from 'node:events';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { FrameDecoder, encodeFrame } from '../src/codec/frame.js';
import { KvError } from '../src/errors.js';
import type { CommandRequest, CommandResponse } from '../src/protocol/generated/abi.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { decodeResponse } from '../src/protocol/wire.js';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { isPromise } from '../src/storage/store.js';
import { serveStream } from '../src/transport/stream-server.js';
import { connect } from '../src/client/client.js';
import { RawPeer, startServer, type Running } from './helpers/server.js';
import { arbBytes, arbCommand, arbHostileFrame, type NamedFrame } from './fuzz/arbitraries.js';
import { classifyFrame, encoded, gzipBomb, gzipFrame, header, MAX_LENGTH, rawFrame, truncate } from './fuzz/inputs.js';
import { outcomeOf, StoreModel } from './fuzz/model.js';
import { check, runSocketFuzzer, type Expected } from './fuzz/socket-fuzzer.js';
import { forkServer } from './fuzz/server-process.js';

/** Splits `bytes` at the given points (taken modulo its length), keeping every byte in order. */
function chunked(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    out.push(bytes.subarray(from, p));
    from = p;
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

type Encoding = 'auto' | 'raw' | 'gzip';

function frameOf(payload: Uint8Array, encoding: Encoding): Buffer {
  if (encoding === 'auto') return encodeFrame(payload);
  return encoding === 'gzip' ? gzipFrame(payload) : rawFrame(payload);
}

const arbPayload = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  { weight: 2, arbitrary: arbBytes(1500) },
  { weight: 1, arbitrary: arbBytes(5000) },
  // Compressible, so gzip frames of it are much smaller than the payload.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 255 })).map(([n, b]) => Buffer.alloc(n, b)) },
);
const arbFrames = fc.array(fc.tuple(arbPayload, fc.constantFrom<Encoding>('auto', 'raw', 'gzip')), { maxLength: 16 });
const arbCuts = fc.array(fc.nat(), { maxLength: 24 });

/** Decodes `chunks` with `decoder`, stopping at the first error; returns the payloads and the error. */
function decodeAll(decoder: FrameDecoder, chunks: readonly Buffer[]): { payloads: Buffer[]; error: unknown } {
  const payloads: Buffer[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    try {
      for (let p = decoder.next(); p !== undefined; p = decoder.next()) payloads.push(Buffer.from(p));
    } catch (error) {
      return { payloads, error };
    }
  }
  return { payloads, error: undefined };
}

describe('FrameDecoder properties', () => {
  test('valid frames, split anywhere, decode to exactly their payloads', () => {
    let frames = 0;
    fc.assert(
      fc.property(arbFrames, arbCuts, (list, cuts) => {
        const stream = Buffer.concat(list.map(([p, e]) => frameOf(p, e)));
        const decoder = new FrameDecoder();
        const { payloads, error } = decodeAll(decoder, chunked(stream, cuts));
        assert.equal(error, undefined);
        assert.deepEqual(payloads.map(hex), list.map(([p]) => hex(p)));
        assert.equal(decoder.bufferedBytes, 0);
        frames += list.length;
      }),
      { numRuns: 300 },
    );
    assert.ok(frames > 0);
  });

  test('random bytes raise only 400 and 413 KvErrors, and buffering stays within one frame plus one chunk', () => {
    // Header-shaped segments reach the length and gzip paths that pure noise rarely does.
    const arbSegment = fc.record({ length: fc.nat({ max: 5000 }), gzip: fc.boolean(), body: fc.uint8Array({ maxLength: 400 }) });
    const arbNoise = fc.oneof(
      fc.uint8Array({ maxLength: 5000 }).map((b) => Buffer.from(b)),
      fc.array(arbSegment, { maxLength: 12 }).map((segments) =>
        Buffer.concat(segments.flatMap((s) => [header(s.length, s.gzip), s.body])),
      ),
    );
    fc.assert(
      fc.property(arbNoise, arbCuts, fc.integer({ min: 1, max: 4096 }), (noise, cuts, maxFrameSize) => {
        const decoder = new FrameDecoder(maxFrameSize);
        for (const chunk of chunked(noise, cuts)) {
          decoder.push(chunk);
          assert.ok(decoder.bufferedBytes <= maxFrameSize + 4 + chunk.length, `buffered ${decoder.bufferedBytes}`);
          for (;;) {
            let payload: Buffer | undefined;
            try {
              payload = decoder.next();
            } catch (err) {
              assert.ok(err instanceof KvError, `threw ${String(err)}`);
              assert.ok(err.status === 400 || err.status === 413, `status ${err.status}`);
              if (err.status === 413) {
                assert.equal(decoder.bufferedBytes, 0);
                assert.throws(() => decoder.next(), (again) => again === err);
                return;
              }
              continue;
            }
            if (payload === undefined) break;
            assert.ok(payload.length <= maxFrameSize);
          }
          // What is left is one incomplete frame at most.
          assert.ok(decoder.bufferedBytes < maxFrameSize + 4, `buffered ${decoder.bufferedBytes} after draining`);
        }
      }),
      { numRuns: 400 },
    );
  });

  test('a truncated stream yields exactly the frames that arrived whole', () => {
    fc.assert(
      fc.property(arbFrames, fc.nat(), arbCuts, (list, cutAt, cuts) => {
        const frames = list.map(([p, e]) => frameOf(p, e));
        const stream = Buffer.concat(frames);
        const keep = cutAt % (stream.length + 1);
        let whole = 0;
        let end = 0;
        while (whole < frames.length && end + frames[whole].length <= keep) end += frames[whole++].length;
        const decoder = new FrameDecoder();
        const { payloads, error } = decodeAll(decoder, chunked(stream.subarray(0, keep), cuts));
        assert.equal(error, undefined);
        assert.deepEqual(payloads.map(hex), list.slice(0, whole).map(([p]) => hex(p)));
        assert.equal(decoder.bufferedBytes, keep - end);
      }),
      { numRuns: 300 },
    );
  });

  test('a corrupted gzip frame is a 400 and the frames around it still decode', () => {
    const arbCorruption = fc.record({
      how: fc.constantFrom('truncate', 'trailer', 'magic', 'body'),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    });
    fc.assert(
      fc.property(arbFrames, arbPayload, arbCorruption, fc.nat(), arbCuts, (list, victim, corruption, position, cuts) => {
        const gz = gzipSync(victim);
        const { how, at, bit } = corruption;
        let broken: Buffer;
        if (how === 'truncate') broken = truncate(gz, at);
        else {
          broken = Buffer.from(gz);
          // gzip: 10 header bytes (magic first), the deflate body, then CRC-32 and length (8 bytes).
          const index = how === 'magic' ? at % 2 : how === 'trailer' ? gz.length - 1 - (at % 8) : 10 + (at % Math.max(1, gz.length - 18));
          broken[index] ^= 1 << bit;
        }
        const index = position % (list.length + 1);
        const frames = list.map(([p, e]) => frameOf(p, e));
        frames.splice(index, 0, rawFrame(broken, true));
        const decoder = new FrameDecoder();
        const payloads: (Buffer | KvError)[] = [];
        for (const chunk of chunked(Buffer.concat(frames), cuts)) {
          decoder.push(chunk);
          for (;;) {
            try {
              const p = decoder.next();
              if (p === undefined) break;
              payloads.push(Buffer.from(p));
            } catch (err) {
              assert.ok(err instanceof KvError);
              payloads.push(err);
            }
          }
        }
        assert.equal(payloads.length, list.length + 1);
        const got = payloads[index];
        if (got instanceof KvError) assert.equal(got.status, 400);
        // A flipped bit in the deflate body is caught by the CRC unless it changed nothing that was output.
        else assert.ok(how === 'body' && got.equals(victim), `${how} corruption decoded as a payload`);
        const others = payloads.filter((_, i) => i !== index);
        assert.deepEqual(
          others.map((p) => (p instanceof KvError ? p.message : hex(p))),
          list.map(([p]) => hex(p)),
        );
      }),
      { numRuns: 300 },
    );
  });

  test('an oversize header or an inflation past the maximum is a 413, and the decoder stays failed', () => {
    const maxFrameSize = 8192;
    const arbTooLarge = fc.oneof(
      fc.tuple(fc.integer({ min: maxFrameSize + 1, max: MAX_LENGTH }), fc.boolean()).map(([n, gz]) => header(n, gz)),
      fc.constant(gzipBomb(maxFrameSize)),
    );
    fc.assert(
      fc.property(arbFrames, arbTooLarge, fc.uint8Array({ maxLength: 2000 }), arbCuts, (list, tooLarge, trailing, cuts) => {
        const stream = Buffer.concat([...list.map(([p, e]) => frameOf(p, e)), tooLarge, trailing]);
        const decoder = new FrameDecoder(maxFrameSize);
        const { payloads, error } = decodeAll(decoder, chunked(stream, cuts));
        assert.deepEqual(payloads.map(hex), list.map(([p]) => hex(p)));
        assert.ok(error instanceof KvError, 'no 413 raised');
        assert.equal(error.status, 413);
        assert.equal(error.code, 'FRAME_TOO_LARGE');
        assert.equal(decoder.bufferedBytes, 0);
        assert.throws(() => decoder.next(), (again) => again === error);
      }),
      { numRuns: 200 },
    );
  });
});

// --- the server under hostile payloads ---

const duplexPair = (streams as { duplexPair?: () => [Duplex, Duplex] }).duplexPair;
const MAX_FRAME = 64 * 1024;

/** Writes `chunks` to `stream` (letting some go out separately), half-closes, and collects every response until the server closes. */
async function exchange(stream: Duplex, chunks: readonly Buffer[]): Promise<CommandResponse[]> {
  const responses: CommandResponse[] = [];
  const decoder = new FrameDecoder();
  stream.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let p = decoder.next(); p !== undefined; p = decoder.next()) responses.push(decodeResponse(p));
  });
  stream.on('error', () => {});
  const closed = once(stream, 'close').then(() => true);
  for (const [i, chunk] of chunks.entries()) {
    stream.write(chunk);
    if (i % 2 === 1) await new Promise((r) => setImmediate(r));
  }
  stream.end();
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 10_000)));
  const ok = await Promise.race([closed, stalled]);
  clearTimeout(timer);
  if (!ok) {
    stream.destroy();
    throw new Error(`the server did not close the stream; ${responses.length} responses: ${responses.map((r) => r.status).join(',')}`);
  }
  return responses;
}

interface HostileSession {
  frames: NamedFrame[];
  ending: 'none' | 'oversize' | 'bomb';
  oversizeLength: number;
  /** Bytes sent after an oversize frame, as by a client that does not wait for the 413. */
  trailing: number;
  value: string;
  cuts: number[];
}

const arbHostileSession: fc.Arbitrary<HostileSession> = fc.record({
  frames: fc.array(arbHostileFrame, { minLength: 1, maxLength: 12 }),
  ending: fc.constantFrom('none', 'none', 'oversize', 'bomb'),
  oversizeLength: fc.integer({ min: MAX_FRAME + 1, max: MAX_LENGTH }),
  trailing: fc.oneof(fc.constant(0), fc.nat({ max: 200_000 })),
  value: fc.string({ unit: 'grapheme', maxLength: 12 }),
  cuts: arbCuts,
});

/**
 * The bytes of a session and what each frame must produce. Unless the stream stops being a
 * request stream (a SUBSCRIBE, a 413), a valid HSET and HGET follow the hostile frames, to show
 * the stream still works; the index of that HGET's response is returned.
 */
function buildSession(s: HostileSession, table: string): { bytes: Buffer; expected: Expected[]; probeAt: number | undefined } {
  const parts: Buffer[] = [];
  const expected: Expected[] = [];
  const add = (kind: string, bytes: Buffer): Expected => {
    const e = { kind, expect: classifyFrame(bytes, MAX_FRAME) };
    parts.push(bytes);
    expected.push(e);
    return e;
  };
  for (const [i, f] of s.frames.entries()) {
    const e = add(f.kind, f.bytes);
    if (e.expect.kind === 'too-large') return { bytes: Buffer.concat(parts), expected, probeAt: undefined };
    if (e.expect.kind === 'subscribe') {
      // One more frame on a subscription stream is answered with an error and ends it; more would go unanswered.
      const next = s.frames[i + 1];
      if (next !== undefined) add(next.kind, next.bytes);
      return { bytes: Buffer.concat(parts), expected, probeAt: undefined };
    }
  }
  add('probe hset', encodeFrame(encoded(requests.hset(table, 'probe', s.value))));
  add('probe hget', encodeFrame(encoded(requests.hget(table, 'probe'))));
  const probeAt = expected.length - 1;
  if (s.ending === 'oversize') add('oversize', header(s.oversizeLength));
  if (s.ending === 'bomb') add('gzip bomb', gzipBomb(MAX_FRAME));
  if (s.ending !== 'none') parts.push(Buffer.alloc(s.trailing, 0xa5));
  return { bytes: Buffer.concat(parts), expected, probeAt };
}

function verifySession(s: HostileSession, built: ReturnType<typeof buildSession>, responses: CommandResponse[]): void {
  const problem = check(built.expected, responses, true);
  assert.equal(problem, undefined, `${problem}; frames ${built.expected.map((e) => e.kind).join(',')}`);
  if (built.probeAt !== undefined) assert.equal(fromValue(responses[built.probeAt].values[0]), s.value);
}

describe('request handling under hostile payloads', () => {
  test('over an in-memory stream: one answer per frame as predicted, and the stream still works', { skip: duplexPair === undefined && 'no stream.duplexPair in this Node.js', timeout: 60_000 }, async (t) => {
    let frames = 0;
    await fc.assert(
      fc.asyncProperty(arbHostileSession, async (s) => {
        const service = new Service({ store: new MemoryStore() });
        const [client, server] = duplexPair!();
        const served = serveStream(server, service, { maxFrameSize: MAX_FRAME });
        const built = buildSession(s, 'probe');
        const responses = await exchange(client, chunked(built.bytes, s.cuts));
        await served.closed;
        verifySession(s, built, responses);
        assert.equal(service.pubsub.size, 0, 'a subscription outlived its stream');
        frames += built.expected.length;
      }),
      { numRuns: 300 },
    );
    t.diagnostic(`${frames} frames over in-memory streams`);
  });

  describe('over TCP', () => {
    let running: Running;
    before(async () => {
      running = await startServer({ maxFrameSize: MAX_FRAME });
    });
    after(() => running.close());

    test('one answer per frame as predicted, the connection still works, and the server keeps serving', { timeout: 60_000 }, async (t) => {
      let frames = 0;
      let run = 0;
      await fc.assert(
        fc.asyncProperty(arbHostileSession, async (s) => {
          const socket = net.connect({ host: '127.0.0.1', port: running.port, noDelay: true });
          await once(socket, 'connect');
          const built = buildSession(s, `probe-${run++}`);
          const responses = await exchange(socket, chunked(built.bytes, s.cuts));
          verifySession(s, built, responses);
          frames += built.expected.length;
        }),
        { numRuns: 100 },
      );
      const kv = await running.client();
      assert.equal(await kv.hset('after-fuzz', 'k', 'v'), undefined);
      assert.equal(await kv.hget('after-fuzz', 'k'), 'v');
      await kv.close();
      t.diagnostic(`${frames} frames over ${run} TCP connections`);
    });
  });
});

// --- the commands against a model ---

/** `request` with its table (if it has one) moved under `prefix`, so runs sharing a server do not meet. */
function inTable(request: CommandRequest, prefix: string): CommandRequest {
  const data = request.requestData;
  if (data === undefined || !('table' in data.value)) return request;
  return { requestData: { ...data, value: { ...data.value, table: prefix + data.value.table } } as CommandRequest['requestData'] };
}

const arbCommands = fc.array(arbCommand, { maxLength: 60, size: 'max' });

describe('commands against a reference model', () => {
  test('the service in-process answers as the model does', (t) => {
    let commands = 0;
    fc.assert(
      fc.property(arbCommands, (list) => {
        const service = new Service({ store: new MemoryStore() });
        const model = new StoreModel();
        for (const [i, request] of list.entries()) {
          const response = service.execute(request);
          assert.ok(!isPromise(response), 'the memory store answers synchronously');
          assert.deepEqual(outcomeOf(response), model.apply(request), `command ${i}: ${request.requestData?.$case}`);
        }
        commands += list.length;
      }),
      { numRuns: 300 },
    );
    t.diagnostic(`${commands} commands in-process`);
  });

  test('a server over TCP answers pipelined commands as the model does', { timeout: 60_000 }, async (t) => {
    const running = await startServer();
    const kv = await running.client();
    let commands = 0;
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(arbCommands, async (list) => {
          const prefix = `run-${run++}/`;
          const sent = list.map((r) => inTable(r, prefix));
          const responses = await Promise.all(sent.map((r) => kv.send(r)));
          const model = new StoreModel();
          for (const [i, request] of sent.entries()) {
            assert.deepEqual(outcomeOf(responses[i]), model.apply(request), `command ${i}: ${request.requestData?.$case}`);
          }
          commands += list.length;
        }),
        { numRuns: 100 },
      );
    } finally {
      await kv.close();
      await running.close();
    }
    t.diagnostic(`${commands} commands over TCP`);
  });
});

// --- many connections at once ---

describe('socket fuzzer', () => {
  test('50 connections of random and hostile frames: every answer as predicted, then the server is healthy and gives its resources back', { timeout: 120_000 }, async (t) => {
    const maxFrameSize = 256 * 1024;
    const seed = process.env.PROTOKV_FUZZ_SEED !== undefined ? Number(process.env.PROTOKV_FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
    t.diagnostic(`seed ${seed} (replay with PROTOKV_FUZZ_SEED=${seed})`);
    const server = await forkServer({ maxFrameSize });
    try {
      const baseline = await server.stats({ gc: true });
      const report = await runSocketFuzzer({
        port: server.port,
        connections: 50,
        frames: 5000,
        seed,
        maxFrameSize,
      });
      t.diagnostic(
        `${report.framesSent} frames, ${report.sessions} connections, ${report.bytesSent} bytes; responses ${JSON.stringify(report.responses)}; ` +
          `endings ${JSON.stringify(report.endings)}; ${report.closedAfter413} closed after 413, ${report.subscriptions} subscriptions`,
      );
      assert.deepEqual(report.failures, [], `${report.failureCount} failures`);
      assert.ok(report.framesSent >= 5000);

      const kv = await connect({ host: '127.0.0.1', port: server.port });
      await kv.hset('after-fuzz', 'k', 42n);
      assert.equal(await kv.hget('after-fuzz', 'k'), 42n);
      await kv.close();

      assert.equal(await server.connectionsSettle(10_000), 0, 'connections left open on the server');
      const afterRun = await server.stats({ gc: true, reset: true });
      t.diagnostic(
        `server RSS ${mib(baseline.rss)} → ${mib(afterRun.rss)}, heap used ${mib(baseline.heapUsed)} → ${mib(afterRun.heapUsed)}, ` +
          `array buffers ${mib(baseline.arrayBuffers)} → ${mib(afterRun.arrayBuffers)} (after gc: ${afterRun.gc})`,
      );
      assert.equal(afterRun.subscriptions, 0);
      // Generous bounds: they catch connections or buffers kept alive, not allocator noise.
      assert.ok(afterRun.heapUsed < baseline.heapUsed + 32 * MIB, 'heap did not come back near its baseline');
      assert.ok(afterRun.arrayBuffers < baseline.arrayBuffers + 32 * MIB, 'buffers did not come back near their baseline');
      assert.ok(afterRun.rss < baseline.rss + 256 * MIB, 'RSS did not come back near its baseline');
    } finally {
      await server.close();
    }
  });
});

const MIB = 1024 * 1024;
const mib = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;

// --- found by the fuzzer ---

describe('frames the decoder rejects, on a subscription stream (SPEC 1.6: anything sent there is an error and ends the subscription)', () => {
  let running: Running;
  before(async () => {
    running = await startServer({ maxFrameSize: MAX_FRAME });
  });
  after(() => running.close());

  async function subscribed(topic: string): Promise<RawPeer> {
    const peer = await RawPeer.connect(running.port);
    peer.send(requests.subscribe(topic));
    const [first] = await peer.responses(1);
    assert.equal(first.status, 200);
    return peer;
  }

  async function closesWithin(peer: RawPeer, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const closed = await Promise.race([peer.closed().then(() => true), limit]);
    clearTimeout(timer);
    return closed;
  }

  test('a compressed frame that does not inflate is a 400 and ends the subscription', async () => {
    const peer = await subscribed('broken-gzip');
    try {
      peer.write(rawFrame(Buffer.from('not gzip'), true));
      const [bad] = await peer.responses(1);
      assert.equal(bad.status, 400);
      assert.ok(await closesWithin(peer, 2000), 'the subscription stream stayed open');
      const kv = await running.client();
      await kv.publish('broken-gzip', 'after');
      await kv.close();
      assert.equal(running.service.pubsub.size, 0, 'the subscription is still live');
    } finally {
      peer.destroy();
    }
  });

  test('an oversize frame is a 413 and the connection is closed, and nothing is left once the client is gone', async () => {
    const peer = await subscribed('oversize');
    try {
      // More bytes after the header, as a client that does not wait for the 413 sends them.
      peer.write(Buffer.concat([header(MAX_FRAME + 1), Buffer.alloc(200_000)]));
      const [tooLarge] = await peer.responses(1);
      assert.equal(tooLarge.status, 413);
      assert.ok(await closesWithin(peer, 2000), 'the connection stayed open after the 413');
    } finally {
      peer.destroy();
    }
    for (let i = 0; i < 40 && running.server.connectionCount > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(running.server.connectionCount, 0, 'the server holds the connection of a client that has gone');
    assert.equal(running.service.pubsub.size, 0, 'the subscription outlived its connection');
  });
});
