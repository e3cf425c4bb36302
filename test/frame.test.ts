import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { COMPRESSION_THRESHOLD, compressFrame, encodeFrame, FrameDecoder } from '../src/codec/frame.js';
import { inflate, SYNC_COMPRESS_LIMIT, SYNC_INFLATE_LIMIT } from '../src/codec/compression.js';
import { KvError } from '../src/errors.js';

function header(len: number, gzip = false): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(((gzip ? 0x8000_0000 : 0) | len) >>> 0);
  return b;
}

function drain(decoder: FrameDecoder): Buffer[] {
  const out: Buffer[] = [];
  for (let p = decoder.next(); p !== undefined; p = decoder.next()) out.push(p);
  return out;
}

test('small payloads are framed uncompressed: header is the length, big-endian', () => {
  const payload = Buffer.alloc(COMPRESSION_THRESHOLD, 7);
  const frame = encodeFrame(payload);
  assert.equal(frame.readUInt32BE(0), COMPRESSION_THRESHOLD);
  assert.deepEqual(frame.subarray(4), payload);
});

test('payloads over 1436 bytes are gzip-compressed with bit 31 set and len = compressed size', () => {
  const payload = Buffer.alloc(COMPRESSION_THRESHOLD + 1, 7);
  const frame = encodeFrame(payload);
  const h = frame.readUInt32BE(0);
  assert.equal(h >>> 31, 1);
  assert.equal(h & 0x7fff_ffff, frame.length - 4);
  assert.ok(frame.length < payload.length);
  const d = new FrameDecoder();
  d.push(frame);
  assert.deepEqual(d.next(), payload);
});

test('the decoder accepts both forms at any size', () => {
  const d = new FrameDecoder();
  const small = Buffer.from('tiny');
  const big = Buffer.alloc(5000, 1);
  const gz = gzipSync(small);
  d.push(Buffer.concat([header(gz.length, true), gz, header(big.length), big]));
  assert.deepEqual(drain(d), [small, big]);
});

test('frames split at every byte and coalesced many per read decode identically', () => {
  const payloads = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(3000, 9), Buffer.from('hello world')];
  const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder();
    d.push(stream.subarray(0, cut));
    const got = drain(d);
    d.push(stream.subarray(cut));
    got.push(...drain(d));
    assert.deepEqual(got, payloads, `split at ${cut}`);
  }
  const d = new FrameDecoder();
  const got: Buffer[] = [];
  for (const byte of stream) {
    d.push(Buffer.of(byte));
    got.push(...drain(d));
  }
  assert.deepEqual(got, payloads, 'one byte per read');
});

test('a whole frame in one chunk is returned without copying', () => {
  const chunk = encodeFrame(Buffer.from('zero-copy'));
  const d = new FrameDecoder();
  d.push(chunk);
  const p = d.next()!;
  assert.equal(p.buffer, chunk.buffer);
});

test('a header over the maximum fails with 413 before the payload is buffered', () => {
  const d = new FrameDecoder(1024);
  d.push(header(1025));
  assert.throws(() => d.next(), (e: unknown) => e instanceof KvError && e.status === 413 && /1025 bytes exceeds the maximum of 1024/.test(e.message));
  assert.equal(d.bufferedBytes, 0);
  d.push(encodeFrame(Buffer.from('x')));
  assert.throws(() => d.next(), /Frame too large/, 'framing is lost: the decoder stays failed');
});

test('a gzip bomb is refused with 413 without inflating past the maximum', () => {
  const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
  const d = new FrameDecoder(1024 * 1024);
  d.push(Buffer.concat([header(bomb.length, true), bomb]));
  assert.throws(() => d.next(), (e: unknown) => e instanceof KvError && e.status === 413);
});

test('invalid gzip is a 400 and the next frame still decodes', () => {
  const d = new FrameDecoder();
  const junk = Buffer.from('not gzip at all');
  d.push(Buffer.concat([header(junk.length, true), junk, encodeFrame(Buffer.from('next'))]));
  assert.throws(() => d.next(), (e: unknown) => e instanceof KvError && e.status === 400 && /not valid gzip/.test(e.message));
  assert.deepEqual(d.next(), Buffer.from('next'));
});

test('maxFrameSize is validated', () => {
  assert.throws(() => new FrameDecoder(0), RangeError);
  assert.throws(() => new FrameDecoder(2 ** 31), RangeError);
});

test('nextFrame hands out payloads as sent, flagged when compressed, without inflating', () => {
  const d = new FrameDecoder();
  const gz = gzipSync(Buffer.from('hello'));
  d.push(Buffer.concat([header(gz.length, true), gz, header(3), Buffer.from('abc')]));
  assert.ok(d.hasFrame());
  assert.deepEqual(d.nextFrame(), { payload: gz, compressed: true });
  assert.deepEqual(d.nextFrame(), { payload: Buffer.from('abc'), compressed: false });
  assert.equal(d.nextFrame(), undefined);
  assert.equal(d.hasFrame(), false);
});

test('a partial frame holds only the bytes that arrived, and says how many its frame will take', () => {
  const d = new FrameDecoder(64 * 1024 * 1024);
  assert.equal(d.frameBytesExpected, 0);
  d.push(Buffer.from([0, 0]));
  assert.equal(d.frameBytesExpected, 2, 'header incomplete: only what is there');
  d.push(Buffer.concat([Buffer.from([0x03, 0xc0]), Buffer.alloc(16)]));
  assert.equal(d.bufferedBytes, 20, 'a 60 MiB header and 16 bytes hold 20 bytes');
  assert.equal(d.frameBytesExpected, 4 + 0x3c0, 'the whole frame once its header is known');
  assert.equal(d.hasFrame(), false);
  const over = new FrameDecoder(1024);
  over.push(header(5000));
  assert.equal(over.hasFrame(), true, 'an oversize header is ready to be refused');
  assert.equal(over.frameBytesExpected, 4, 'and reserves nothing for its payload');
});

test('inflate: small payloads on the spot, large ones in the thread pool, bombs and junk refused', async () => {
  const small = Buffer.alloc(1000, 1);
  assert.deepEqual(inflate(gzipSync(small), 1 << 20), small);
  const large = Buffer.alloc(SYNC_INFLATE_LIMIT + 1, 2);
  const pending = inflate(gzipSync(large), 1 << 20);
  assert.ok(pending instanceof Promise, 'a payload inflating past the synchronous limit is inflated asynchronously');
  assert.deepEqual(await pending, large);
  await assert.rejects(
    Promise.resolve(inflate(gzipSync(Buffer.alloc(2 << 20)), 1 << 20)),
    (e: unknown) => e instanceof KvError && e.status === 413,
  );
  assert.throws(() => inflate(Buffer.from('not gzip'), 1 << 20), (e: unknown) => e instanceof KvError && e.status === 400);
});

test('compressFrame frames a payload as header and body chunks, compressed in the thread pool', async () => {
  for (const payload of [Buffer.alloc(SYNC_COMPRESS_LIMIT + 1, 3), randomBytes(3 * 1024 * 1024)]) {
    const [head, ...body] = await compressFrame(payload);
    const length = body.reduce((n, b) => n + b.length, 0);
    assert.equal(head!.readUInt32BE(0), (0x8000_0000 | length) >>> 0);
    if (payload.length > 2 * 1024 * 1024) assert.ok(body.length > 1, 'a large body stays in the chunks it was produced in');
    const d = new FrameDecoder(8 * 1024 * 1024);
    d.push(Buffer.concat([head!, ...body]));
    assert.deepEqual(d.next(), payload);
  }
});

test('inflating in the thread pool copes with a gzip trailer that understates or overstates the size', async () => {
  const payload = randomBytes(2 * 1024 * 1024);
  const gz = gzipSync(payload);
  for (const stated of [1, 64 * 1024 * 1024, 0xffff_ffff]) {
    const lying = Buffer.from(gz);
    lying.writeUInt32LE(stated >>> 0, lying.length - 4);
    // zlib checks the trailer: a wrong size is invalid gzip, refused whatever room was reserved for it.
    await assert.rejects(Promise.resolve(inflate(lying, 8 * 1024 * 1024)), (e: unknown) => e instanceof KvError && e.status === 400);
  }
  assert.deepEqual(await inflate(gz, 8 * 1024 * 1024), payload);
});
