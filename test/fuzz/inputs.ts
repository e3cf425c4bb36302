/**
 * Fuzz inputs shared by the property tests and the socket fuzzer: byte mutations, protobuf-shaped
 * junk, hostile frames (gzip bombs, oversize headers), and `classify`, which predicts from the
 * bytes alone what the server must answer to a frame — so every response can be checked exactly,
 * not just "the server did not crash".
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import type { CommandRequest } from '../../src/protocol/generated/abi.js';
import { requests } from '../../src/protocol/requests.js';
import type { KvValue } from '../../src/protocol/values.js';
import { decodeRequest, encodeRequest } from '../../src/protocol/wire.js';
import { DEFAULT_MAX_KEYS_PER_COMMAND } from '../../src/service/service.js';
import { MAX_PAGE_SIZE } from '../../src/service/commands.js';
import type { Rand } from './random.js';

export const GZIP_BIT = 0x8000_0000;
export const MAX_LENGTH = 0x7fff_ffff;

/** A frame header for `length` payload bytes. */
export function header(length: number, gzip = false): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(((gzip ? GZIP_BIT : 0) | length) >>> 0, 0);
  return b;
}

/** A frame carrying `payload` exactly as given, flagged compressed or not. */
export function rawFrame(payload: Uint8Array, gzip = false): Buffer {
  return Buffer.concat([header(payload.length, gzip), payload]);
}

/** A frame carrying `payload` gzip-compressed, whatever its size. */
export function gzipFrame(payload: Uint8Array): Buffer {
  return rawFrame(gzipSync(payload), true);
}

// --- mutations: pure, so property tests can drive them with generated positions ---

export function flipBits(input: Uint8Array, bitPositions: readonly number[]): Buffer {
  const out = Buffer.from(input);
  if (out.length === 0) return out;
  for (const p of bitPositions) {
    const bit = p % (out.length * 8);
    out[bit >> 3] ^= 1 << (bit & 7);
  }
  return out;
}

export function truncate(input: Uint8Array, keep: number): Buffer {
  return Buffer.from(input.subarray(0, input.length === 0 ? 0 : keep % input.length));
}

export function extend(input: Uint8Array, extra: Uint8Array): Buffer {
  return Buffer.concat([input, extra]);
}

/** Replaces `removed` bytes at `at` with `inserted`. */
export function splice(input: Uint8Array, at: number, removed: number, inserted: Uint8Array): Buffer {
  const start = input.length === 0 ? 0 : at % (input.length + 1);
  return Buffer.concat([input.subarray(0, start), inserted, input.subarray(Math.min(input.length, start + removed))]);
}

export type Mutation = 'flip' | 'truncate' | 'extend' | 'splice' | 'overwrite';

export function mutate(rand: Rand, input: Uint8Array): Buffer {
  const kind = rand.pick<Mutation>(['flip', 'truncate', 'extend', 'splice', 'overwrite']);
  switch (kind) {
    case 'flip':
      return flipBits(input, Array.from({ length: rand.range(1, 4) }, () => rand.int(1 << 30)));
    case 'truncate':
      return truncate(input, rand.int(1 << 30));
    case 'extend':
      return extend(input, rand.chance(0.5) ? rand.bytes(rand.size(64)) : protobufish(rand, 2));
    case 'splice':
      return splice(input, rand.int(1 << 30), rand.int(8), rand.chance(0.5) ? rand.bytes(rand.size(16)) : protobufish(rand, 1));
    case 'overwrite': {
      const out = Buffer.from(input);
      if (out.length > 0) out[rand.int(out.length)] = rand.pick([0x00, 0xff, 0x80, 0x7f, rand.int(256)]);
      return out;
    }
  }
}

// --- protobuf-shaped junk: valid-looking tags and lengths reach deeper into the decoder than noise ---

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Random fields with plausible tags (mostly the schema's field numbers), every wire type, nested messages. */
export function protobufish(rand: Rand, depth: number): Buffer {
  const parts: Buffer[] = [];
  const fields = rand.range(0, 4);
  for (let i = 0; i < fields; i++) {
    const field = rand.chance(0.85) ? rand.range(1, 12) : rand.range(0, 40);
    const wire = rand.chance(0.7) ? 2 : rand.pick([0, 1, 3, 4, 5, 6, 7]);
    parts.push(varint(field * 8 + wire));
    switch (wire) {
      case 0:
        parts.push(varint(rand.chance(0.5) ? rand.int(300) : rand.int(2 ** 31)));
        break;
      case 1:
        parts.push(rand.bytes(8));
        break;
      case 5:
        parts.push(rand.bytes(4));
        break;
      case 2: {
        const body = depth > 0 && rand.chance(0.6) ? protobufish(rand, depth - 1) : rand.bytes(rand.size(24));
        // Sometimes lie about the length, the classic way to trip a decoder.
        const length = rand.chance(0.9) ? body.length : rand.int(body.length + 16);
        parts.push(varint(length), body);
        break;
      }
      default:
        break;
    }
  }
  return Buffer.concat(parts);
}

// --- valid requests over a small key space, so reads hit what writes stored ---

export const TABLES = ['', 'fuzz', 'ü表'];
export const KEYS = ['', 'a', 'b', 'κλειδί', 'k\u0000'];
export const TOPICS = ['', 'news', 'τ'];

function randomValue(rand: Rand): KvValue {
  switch (rand.int(6)) {
    case 0:
      return rand.pick(['', 'v', 'ö'.repeat(rand.size(40))]);
    case 1:
      return rand.bytes(rand.size(64));
    case 2:
      return rand.pick([0n, -1n, (1n << 63n) - 1n, -(1n << 63n), BigInt(rand.int(2 ** 31)) * 3_000_000_000n]);
    case 3:
      return rand.pick([0, -0, 1.5, Number.NaN, Infinity, -Infinity, rand.next() * 1e300]);
    case 4:
      return rand.chance(0.5);
    default:
      return null;
  }
}

function someKeys(rand: Rand): string[] {
  return Array.from({ length: rand.int(5) }, () => rand.pick(KEYS));
}

/** Any command except SUBSCRIBE (which changes what the stream is), with valid arguments. */
export function randomRequest(rand: Rand): CommandRequest {
  const table = rand.pick(TABLES);
  const key = rand.pick(KEYS);
  switch (rand.int(11)) {
    case 0:
      return requests.hget(table, key);
    case 1:
      return requests.hgetall(table);
    case 2:
      return requests.hmget(table, someKeys(rand));
    case 3:
      return requests.hset(table, key, randomValue(rand));
    case 4:
      return requests.hmset(
        table,
        someKeys(rand).map((k) => [k, randomValue(rand)] as const),
      );
    case 5:
      return requests.hdel(table, key);
    case 6:
      return requests.hmdel(table, someKeys(rand));
    case 7:
      return requests.hexist(table, key);
    case 8:
      return requests.hmexist(table, someKeys(rand));
    case 9:
      return requests.publish(rand.pick(TOPICS), ...Array.from({ length: rand.int(3) }, () => randomValue(rand)));
    default:
      return requests.unsubscribe(rand.pick(TOPICS), rand.int(50));
  }
}

// --- hostile frames ---

const bombs = new Map<number, Buffer>();

/** A small gzip frame that inflates past `maxFrameSize`. */
export function gzipBomb(maxFrameSize: number): Buffer {
  let frame = bombs.get(maxFrameSize);
  if (frame === undefined) {
    frame = gzipFrame(Buffer.alloc(maxFrameSize + 1));
    bombs.set(maxFrameSize, frame);
  }
  return frame;
}

/** A header announcing more than `maxFrameSize` bytes, up to the largest length a header holds. */
export function oversizeHeader(rand: Rand, maxFrameSize: number): Buffer {
  const length = rand.chance(0.5) ? maxFrameSize + 1 + rand.int(16) : rand.range(maxFrameSize + 1, MAX_LENGTH);
  return header(length, rand.chance(0.3));
}

/** A gzip stream damaged so that it cannot inflate: cut short, or a check byte or magic byte changed. */
export function brokenGzip(rand: Rand, payload: Uint8Array): Buffer {
  const gz = gzipSync(payload);
  switch (rand.int(3)) {
    case 0:
      return truncate(gz, rand.int(gz.length));
    case 1: {
      // The trailer: CRC-32, then the length; either mismatching is detected.
      const at = gz.length - 1 - rand.int(8);
      gz[at] ^= 1 << rand.int(8);
      return gz;
    }
    default:
      gz[rand.int(2)] ^= 0xff;
      return gz;
  }
}

// --- what the server must answer ---

/**
 * What a frame must produce:
 * - `reply`: exactly one response, its status one of `statuses`;
 * - `subscribe`: a 200 carrying the subscription id, and the stream becomes a subscription stream;
 * - `too-large`: a 413, then the server closes the connection.
 */
export type Expectation =
  | { kind: 'reply'; statuses: readonly number[]; command: string }
  | { kind: 'subscribe' }
  | { kind: 'too-large'; by: 'header' | 'inflation' };

const OK = [200];
const OK_OR_NOT_FOUND = [200, 404];
const INVALID = [400];
const OK_OR_INVALID = [200, 400];

/**
 * Statuses for a command answering one value per key on a server whose responses may take
 * `maxFrameSize` bytes. Each key costs at least `perKey` bytes of response (two for an empty
 * value, four for a bool), so an answer that cannot fit is a 413 for sure; when values vary, one
 * that could fit may still not, depending on what other frames stored.
 */
function perKeyStatuses(keys: number, perKey: number, maxFrameSize: number, exact: boolean): readonly number[] {
  const smallest = 3 + perKey * keys;
  if (smallest > maxFrameSize) return [413];
  return !exact && smallest > maxFrameSize / 64 ? [200, 413] : OK;
}

/** Predicts the answer to a request payload as the server will decode it. */
export function classifyPayload(payload: Uint8Array, maxKeys = DEFAULT_MAX_KEYS_PER_COMMAND, maxFrameSize = Infinity): Expectation {
  let request: CommandRequest;
  try {
    request = decodeRequest(payload);
  } catch {
    return { kind: 'reply', statuses: INVALID, command: 'undecodable' };
  }
  const data = request.requestData;
  if (data === undefined) return { kind: 'reply', statuses: INVALID, command: 'none' };
  const reply = (statuses: readonly number[]): Expectation => ({ kind: 'reply', statuses, command: data.$case });
  switch (data.$case) {
    case 'subscribe':
      return { kind: 'subscribe' };
    case 'hget':
    case 'unsubscribe':
      return reply(OK_OR_NOT_FOUND);
    case 'hset':
      return reply(data.value.pair === undefined ? INVALID : OK);
    case 'hmget':
    case 'hmdel':
      return reply(data.value.keys.length > maxKeys ? INVALID : perKeyStatuses(data.value.keys.length, 2, maxFrameSize, false));
    case 'hmexist':
      return reply(data.value.keys.length > maxKeys ? INVALID : perKeyStatuses(data.value.keys.length, 4, maxFrameSize, true));
    case 'hmset':
      return reply(data.value.pairs.length > maxKeys ? INVALID : OK);
    case 'hscan':
    case 'tables':
      // A mutated cursor is almost always malformed, but may by chance be one the store accepts.
      if (data.value.count > MAX_PAGE_SIZE) return reply(INVALID);
      return reply(data.value.cursor === '' ? OK : OK_OR_INVALID);
    default:
      return reply(OK);
  }
}

/** Predicts the answer to one whole frame (header included) sent to a server with `maxFrameSize`. */
export function classifyFrame(frame: Uint8Array, maxFrameSize: number): Expectation {
  const word = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).readUInt32BE(0);
  const length = word & MAX_LENGTH;
  if (length > maxFrameSize) return { kind: 'too-large', by: 'header' };
  const payload = frame.subarray(4, 4 + length);
  if ((word & GZIP_BIT) === 0) return classifyPayload(payload, DEFAULT_MAX_KEYS_PER_COMMAND, maxFrameSize);
  let inflated: Buffer;
  try {
    inflated = gunzipSync(payload, { maxOutputLength: maxFrameSize });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return { kind: 'too-large', by: 'inflation' };
    return { kind: 'reply', statuses: INVALID, command: 'bad gzip' };
  }
  return classifyPayload(inflated, DEFAULT_MAX_KEYS_PER_COMMAND, maxFrameSize);
}

/** The encoded bytes of a valid request (for mutation). */
export function encoded(request: CommandRequest): Buffer {
  const bytes = encodeRequest(request);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A payload that decodes to an HMGET naming `count` keys: few bytes compressed, a lot of work decoded. */
export function manyKeysPayload(count: number): Buffer {
  const keys = Buffer.alloc(count * 2);
  for (let i = 0; i < keys.length; i += 2) keys[i] = 0x12;
  return Buffer.concat([Buffer.from([0x1a]), varint(keys.length), keys]);
}
