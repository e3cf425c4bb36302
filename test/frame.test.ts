import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { COMPRESSION_THRESHOLD, encodeFrame, FrameDecoder } from '../src/codec/frame.js';
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
