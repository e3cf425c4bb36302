/**
 * Strings that are not valid UTF-8 are refused with a 400 naming the field (SPEC 1.5), never
 * silently altered: in the decoder, and over the network on every store.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { CommandRequest } from '../src/protocol/generated/abi.js';
import { decodeCommandRequest, decodeValue, Utf8Error } from '../src/protocol/decoder.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { decodeRequest } from '../src/protocol/wire.js';
import { encodeFrame } from '../src/codec/frame.js';
import { KvError } from '../src/errors.js';
import { RawPeer, startServer, type Running } from './helpers/server.js';
import { STORE_KINDS, type StoreFixture } from './helpers/stores.js';

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited field. */
const field = (n: number, bytes: Buffer | string): Buffer => {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return Buffer.concat([varint((n << 3) | 2), varint(b.length), b]);
};
const uint = (n: number, v: number): Buffer => Buffer.concat([varint(n << 3), varint(v)]);
const req = (command: number, ...fields: Buffer[]): Buffer => field(command, Buffer.concat(fields));
const stringValue = (s: Buffer | string) => field(1, s);

/** Byte sequences that are not UTF-8, each with why. */
const INVALID: [string, Buffer][] = [
  ['0xFF', Buffer.from([0xff])],
  ['0xFE', Buffer.from([0xfe])],
  ['a lone continuation byte', Buffer.from('ab\x80', 'latin1')],
  ['a truncated sequence', Buffer.from([0x61, 0xe2, 0x82])],
  ['an overlong NUL', Buffer.from([0xc0, 0x80])],
  ['an overlong slash', Buffer.from([0xe0, 0x80, 0xaf])],
  ['a surrogate', Buffer.from([0xed, 0xa0, 0x80])],
  ['above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
  ['a 5-byte form', Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])],
  ['bad bytes after a long valid prefix', Buffer.concat([Buffer.from('x'.repeat(100)), Buffer.from([0xff])])],
  ['bad bytes after long non-ASCII', Buffer.concat([Buffer.from('é'.repeat(40)), Buffer.from([0xc3])])],
];

const BAD = Buffer.from([0xff]);

/** Every string field of every command, with a request carrying `bad` in it. */
const FIELDS: [string, (bad: Buffer) => Buffer][] = [
  ['hget.table', (b) => req(1, field(1, b), field(2, 'k'))],
  ['hget.key', (b) => req(1, field(1, 't'), field(2, b))],
  ['hgetall.table', (b) => req(2, field(1, b))],
  ['hmget.table', (b) => req(3, field(1, b), field(2, 'k'))],
  ['hmget.keys', (b) => req(3, field(1, 't'), field(2, 'k'), field(2, b))],
  ['hset.table', (b) => req(4, field(1, b), field(2, Buffer.concat([field(1, 'k'), field(2, stringValue('v'))])))],
  ['hset.pair.key', (b) => req(4, field(1, 't'), field(2, Buffer.concat([field(1, b), field(2, stringValue('v'))])))],
  ['hset.pair.value', (b) => req(4, field(1, 't'), field(2, Buffer.concat([field(1, 'k'), field(2, stringValue(b))])))],
  ['hmset.table', (b) => req(5, field(1, b))],
  ['hmset.pairs.key', (b) => req(5, field(1, 't'), field(2, field(1, 'ok')), field(2, field(1, b)))],
  ['hmset.pairs.value', (b) => req(5, field(1, 't'), field(2, Buffer.concat([field(1, 'k'), field(2, stringValue(b))])))],
  ['hdel.table', (b) => req(6, field(1, b), field(2, 'k'))],
  ['hdel.key', (b) => req(6, field(1, 't'), field(2, b))],
  ['hmdel.keys', (b) => req(7, field(1, 't'), field(2, b))],
  ['hexist.key', (b) => req(8, field(1, 't'), field(2, b))],
  ['hmexist.keys', (b) => req(9, field(1, 't'), field(2, b))],
  ['subscribe.topic', (b) => req(10, field(1, b))],
  ['unsubscribe.topic', (b) => req(11, field(1, b), uint(2, 1))],
  ['publish.topic', (b) => req(12, field(1, b))],
  ['publish.data', (b) => req(12, field(1, 'topic'), field(2, stringValue(b)))],
  ['hlen.table', (b) => req(13, field(1, b))],
  ['hscan.table', (b) => req(14, field(1, b))],
  ['hscan.cursor', (b) => req(14, field(1, 't'), field(2, b), uint(3, 10))],
  ['tables.cursor', (b) => req(15, field(1, b))],
  ['hdrop.table', (b) => req(16, field(1, b))],
];

const refusedNaming = (path: string) => (err: unknown) =>
  err instanceof KvError && err.status === 400 && err.code === 'INVALID_UTF8' && err.message === `Invalid command: ${path} is not valid UTF-8`;

describe('the request decoder and UTF-8', () => {
  test('every string field of every command refuses bytes that are not UTF-8, naming the field', () => {
    for (const [path, build] of FIELDS) {
      assert.throws(() => decodeRequest(build(BAD)), refusedNaming(path), path);
      // The same request with valid text decodes.
      assert.ok(decodeRequest(build(Buffer.from('ok é 😀'))).requestData, path);
    }
  });

  test('each kind of malformed UTF-8 is refused, in short and long strings', () => {
    for (const [what, bytes] of INVALID) {
      assert.throws(() => decodeCommandRequest(req(1, field(1, 't'), field(2, bytes))), Utf8Error, what);
      assert.throws(() => decodeRequest(req(4, field(1, bytes))), refusedNaming('hset.table'), what);
    }
  });

  test('0xFF and 0xFE no longer alias (both used to become U+FFFD)', () => {
    const generated = (b: Buffer) => CommandRequest.decode(req(1, field(1, 't'), field(2, b)));
    assert.deepEqual(generated(Buffer.from([0xff])), generated(Buffer.from([0xfe])), 'the generated decoder replaces both');
    assert.throws(() => decodeRequest(req(1, field(1, 't'), field(2, Buffer.from([0xff])))), refusedNaming('hget.key'));
    assert.throws(() => decodeRequest(req(1, field(1, 't'), field(2, Buffer.from([0xfe])))), refusedNaming('hget.key'));
  });

  test('valid UTF-8 of every width decodes exactly, U+FFFD itself included', () => {
    for (const text of ['', 'ascii', 'é', '€', '😀', '\u{10FFFF}', '\uFFFD', '\0', 'x'.repeat(33), 'é'.repeat(100), `${'a'.repeat(40)}😀`]) {
      const bytes = req(1, field(1, text), field(2, text));
      assert.deepEqual(decodeCommandRequest(bytes), CommandRequest.decode(bytes), JSON.stringify(text));
      assert.deepEqual(decodeCommandRequest(bytes).requestData?.value, { table: text, key: text });
    }
  });

  test('random bytes are accepted exactly when the native validator of Node calls them UTF-8, short or long', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 80 }),
      fc.array(fc.constantFrom(0x61, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x90, 0x8f), { maxLength: 80 }).map((a) => Uint8Array.from(a)),
      fc.string({ unit: 'grapheme', maxLength: 30 }).map((t) => Uint8Array.from(Buffer.from(t))),
    );
    fc.assert(
      fc.property(bytes, (raw) => {
        const b = Buffer.from(raw);
        const payload = req(1, field(1, 't'), field(2, b));
        if (isUtf8(b)) assert.equal((decodeCommandRequest(payload).requestData?.value as { key: string }).key, b.toString('utf8'));
        else assert.throws(() => decodeCommandRequest(payload), Utf8Error);
      }),
      { numRuns: 5000 },
    );
  });

  test('a stored value whose string is not UTF-8 is refused too', () => {
    assert.throws(() => decodeValue(stringValue(BAD)), Utf8Error);
  });
});

for (const [kind, open] of Object.entries(STORE_KINDS)) {
  describe(`UTF-8 over the network on the ${kind} store`, () => {
    let fixture: StoreFixture;
    let running: Running;
    let peer: RawPeer;
    before(async () => {
      fixture = await open();
      running = await startServer({ store: fixture.store });
      peer = await RawPeer.connect(running.port);
    });
    after(async () => {
      peer.destroy();
      await running.close();
      await fixture.cleanup();
    });

    test('a request with a string that is not UTF-8 gets a 400 naming the field; nothing is written; the connection stays usable', async () => {
      for (const [path, build] of FIELDS) {
        if (path.startsWith('subscribe')) continue; // a valid SUBSCRIBE would turn the stream into a subscription
        peer.write(encodeFrame(build(BAD)));
        const [r] = await peer.responses(1);
        assert.equal(r.status, 400, path);
        assert.equal(r.message, `Invalid command: ${path} is not valid UTF-8`);
        assert.deepEqual(r.values, []);
        assert.deepEqual(r.pairs, []);
      }
      peer.write(encodeFrame(req(4, field(1, Buffer.from([0xff])), field(2, field(1, 'k')))));
      peer.write(encodeFrame(req(4, field(1, Buffer.from([0xfe])), field(2, field(1, 'k')))));
      peer.send(requests.tables('', 10_000));
      const [ff, fe, tables] = await peer.responses(3);
      assert.equal(ff.status, 400);
      assert.equal(fe.status, 400);
      assert.equal(tables.status, 200);
      assert.deepEqual(tables.pairs, [], 'nothing was written');
      peer.send(requests.hset('t', '\uFFFD', 'real U+FFFD'));
      peer.send(requests.hget('t', '\uFFFD'));
      const [set, get] = await peer.responses(2);
      assert.equal(set.status, 200);
      assert.deepEqual(get.values.map(fromValue), ['real U+FFFD']);
    });
  });
}
