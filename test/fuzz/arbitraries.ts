/**
 * fast-check generators for the property tests: typed values, commands over a small key space
 * (so reads and deletes meet earlier writes), and frames from well-formed to hostile.
 */
import fc from 'fast-check';
import type { CommandRequest } from '../../src/protocol/generated/abi.js';
import { command, requests } from '../../src/protocol/requests.js';
import type { KvValue } from '../../src/protocol/values.js';
import { Rand } from './random.js';
import { brokenGzip, encoded, extend, flipBits, gzipFrame, protobufish, rawFrame, splice, truncate } from './inputs.js';

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

export const arbTable = fc.constantFrom('', 't', 'ü表');

export const arbKey = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom('', 'a', 'b', 'κλειδί', 'k\u0000') },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }) },
);

export const arbTopic = fc.constantFrom('', 'news', 'τ');

/** Random bytes of a length drawn first: cheaper than an array arbitrary for large sizes. */
export const arbBytes = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.tuple(fc.integer({ min: 0, max: maxLength }), fc.integer()).map(([n, seed]) => new Rand(seed).bytes(n));

export const arbValue: fc.Arbitrary<KvValue> = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  fc.bigInt({ min: INT64_MIN, max: INT64_MAX }),
  fc.constantFrom(INT64_MIN, INT64_MAX, 0n, -1n, 2n ** 53n + 1n),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  // Large enough that the frame carrying it is sent compressed.
  fc.integer({ min: 1437, max: 4000 }).map((n) => 'x'.repeat(n)),
  arbBytes(4000),
);

const arbKeys = fc.array(arbKey, { maxLength: 5 });

/** Any hash command, PUBLISH and UNSUBSCRIBE, plus HSETs with a missing pair or a pair without a value. */
export const arbCommand: fc.Arbitrary<CommandRequest> = fc.oneof(
  { weight: 2, arbitrary: fc.tuple(arbTable, arbKey).map(([t, k]) => requests.hget(t, k)) },
  { weight: 1, arbitrary: arbTable.map((t) => requests.hgetall(t)) },
  { weight: 1, arbitrary: fc.tuple(arbTable, arbKeys).map(([t, ks]) => requests.hmget(t, ks)) },
  { weight: 4, arbitrary: fc.tuple(arbTable, arbKey, arbValue).map(([t, k, v]) => requests.hset(t, k, v)) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(arbTable, fc.array(fc.tuple(arbKey, arbValue), { maxLength: 5 }))
      .map(([t, pairs]) => requests.hmset(t, pairs)),
  },
  { weight: 2, arbitrary: fc.tuple(arbTable, arbKey).map(([t, k]) => requests.hdel(t, k)) },
  { weight: 1, arbitrary: fc.tuple(arbTable, arbKeys).map(([t, ks]) => requests.hmdel(t, ks)) },
  { weight: 1, arbitrary: fc.tuple(arbTable, arbKey).map(([t, k]) => requests.hexist(t, k)) },
  { weight: 1, arbitrary: fc.tuple(arbTable, arbKeys).map(([t, ks]) => requests.hmexist(t, ks)) },
  { weight: 1, arbitrary: fc.tuple(arbTopic, fc.array(arbValue, { maxLength: 3 })).map(([topic, vs]) => requests.publish(topic, ...vs)) },
  { weight: 1, arbitrary: fc.tuple(arbTopic, fc.nat()).map(([topic, id]) => requests.unsubscribe(topic, id)) },
  { weight: 1, arbitrary: arbTable.map((table) => command('hset', { table, pair: undefined })) },
  { weight: 1, arbitrary: fc.tuple(arbTable, arbKey).map(([table, key]) => command('hset', { table, pair: { key, value: undefined } })) },
);

export type MutationSpec =
  | { flip: number[] }
  | { truncate: number }
  | { extend: Uint8Array }
  | { splice: [number, number, Uint8Array] };

export const arbMutation: fc.Arbitrary<MutationSpec> = fc.oneof(
  fc.record({ flip: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }) }),
  fc.record({ truncate: fc.nat() }),
  fc.record({ extend: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ splice: fc.tuple(fc.nat(), fc.nat({ max: 8 }), fc.uint8Array({ maxLength: 16 })) }),
);

export function applyMutation(input: Uint8Array, m: MutationSpec): Buffer {
  if ('flip' in m) return flipBits(input, m.flip);
  if ('truncate' in m) return truncate(input, m.truncate);
  if ('extend' in m) return extend(input, m.extend);
  return splice(input, ...m.splice);
}

/** A frame and the name of how it was made (for failure reports). */
export interface NamedFrame {
  kind: string;
  bytes: Buffer;
}

const named = (kind: string) => (bytes: Buffer): NamedFrame => ({ kind, bytes });

/** Frames a server must answer without losing the stream: well-formed, mutated, junk, broken gzip. */
export const arbHostileFrame: fc.Arbitrary<NamedFrame> = fc.oneof(
  { weight: 3, arbitrary: arbCommand.map((r) => rawFrame(encoded(r))).map(named('valid')) },
  { weight: 1, arbitrary: arbCommand.map((r) => gzipFrame(encoded(r))).map(named('valid-gzip')) },
  {
    weight: 4,
    arbitrary: fc.tuple(arbCommand, arbMutation).map(([r, m]) => rawFrame(applyMutation(encoded(r), m))).map(named('mutated')),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(arbCommand, arbMutation).map(([r, m]) => gzipFrame(applyMutation(encoded(r), m))).map(named('mutated-gzip')),
  },
  { weight: 2, arbitrary: fc.integer().map((seed) => rawFrame(protobufish(new Rand(seed), 3))).map(named('protobufish')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => rawFrame(b)).map(named('random')) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => rawFrame(b, true)).map(named('random-gzip-flag')) },
  {
    weight: 1,
    arbitrary: fc.tuple(arbCommand, fc.integer()).map(([r, seed]) => rawFrame(brokenGzip(new Rand(seed), encoded(r)), true)).map(named('broken-gzip')),
  },
  { weight: 1, arbitrary: fc.constant(named('subscribe')(rawFrame(encoded(requests.subscribe('news'))))) },
);
