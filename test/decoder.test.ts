/** The hand-written request decoder agrees with the generated one. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CommandRequest, Value, type Kvpair } from '../src/protocol/generated/abi.js';
import { decodeCommandRequest, decodeValue } from '../src/protocol/decoder.js';
import { command, type CommandName } from '../src/protocol/requests.js';

const text = fc.string({ unit: 'binary', maxLength: 24 });
const value: fc.Arbitrary<Value> = fc.oneof(
  fc.constant<Value>({ value: undefined }),
  text.map((s): Value => ({ value: { $case: 'string', value: s } })),
  fc.uint8Array({ maxLength: 24 }).map((b): Value => ({ value: { $case: 'binary', value: Buffer.from(b) } })),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map((n): Value => ({ value: { $case: 'integer', value: n } })),
  fc.constantFrom(0n, 1n, -1n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n, -(2n ** 31n)).map((n): Value => ({ value: { $case: 'integer', value: n } })),
  fc.double().map((d): Value => ({ value: { $case: 'float', value: d } })),
  fc.boolean().map((b): Value => ({ value: { $case: 'bool', value: b } })),
);
const pair: fc.Arbitrary<Kvpair> = fc.record({ key: text, value: fc.option(value, { nil: undefined }) });
const keys = fc.array(text, { maxLength: 6 });

const request: fc.Arbitrary<CommandRequest> = fc.oneof(
  fc.constant<CommandRequest>({ requestData: undefined }),
  ...(['hget', 'hdel', 'hexist'] as const).map((c) => fc.record({ table: text, key: text }).map((v) => command(c, v))),
  text.map((table) => command('hgetall', { table })),
  ...(['hmget', 'hmdel', 'hmexist'] as const).map((c) => fc.record({ table: text, keys }).map((v) => command(c, v))),
  fc.record({ table: text, pair: fc.option(pair, { nil: undefined }) }).map((v) => command('hset', v)),
  fc.record({ table: text, pairs: fc.array(pair, { maxLength: 5 }) }).map((v) => command('hmset', v)),
  text.map((topic) => command('subscribe', { topic })),
  fc.record({ topic: text, id: fc.nat({ max: 0xffff_ffff }) }).map((v) => command('unsubscribe', v)),
  fc.record({ topic: text, data: fc.array(value, { maxLength: 5 }) }).map((v) => command('publish', v)),
  text.map((table) => command('hlen', { table })),
  fc.record({ table: text, cursor: text, count: fc.nat({ max: 0xffff_ffff }) }).map((v) => command('hscan', v)),
  fc.record({ cursor: text, count: fc.nat({ max: 0xffff_ffff }) }).map((v) => command('tables', v)),
  text.map((table) => command('hdrop', { table })),
);

test('every valid request decodes exactly as the generated decoder decodes it', () => {
  fc.assert(
    fc.property(request, (req) => {
      const bytes = Buffer.from(CommandRequest.encode(req).finish());
      assert.deepEqual(decodeCommandRequest(bytes), CommandRequest.decode(bytes));
    }),
    { numRuns: 3000 },
  );
});

test('unknown fields are skipped, and the last command wins', () => {
  const hget = Buffer.from(CommandRequest.encode(command('hget', { table: 't', key: 'k' })).finish());
  const hdel = Buffer.from(CommandRequest.encode(command('hdel', { table: 'u', key: 'v' })).finish());
  const unknown = Buffer.from([0xa2, 0x01, 0x02, 0x08, 0x01, 0x98, 0x01, 0x05, 0xa5, 0x01, 1, 2, 3, 4]);
  const bytes = Buffer.concat([hget, unknown, hdel]);
  assert.deepEqual(decodeCommandRequest(bytes), CommandRequest.decode(bytes));
  assert.equal(decodeCommandRequest(bytes).requestData?.$case satisfies CommandName | undefined, 'hdel');
});

test('random bytes either throw or decode as the generated decoder does', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
      const bytes = Buffer.from(raw);
      let ours: CommandRequest;
      try {
        ours = decodeCommandRequest(bytes);
      } catch {
        return;
      }
      let theirs: CommandRequest;
      try {
        theirs = CommandRequest.decode(bytes);
      } catch {
        return;
      }
      assert.deepEqual(ours, theirs);
    }),
    { numRuns: 5000 },
  );
});

test('truncated requests throw', () => {
  const bytes = Buffer.from(CommandRequest.encode(command('hset', { table: 'table', pair: { key: 'key', value: { value: { $case: 'string', value: 'value' } } } })).finish());
  for (let cut = 1; cut < bytes.length; cut++) assert.throws(() => decodeCommandRequest(bytes.subarray(0, cut)), RangeError, `cut at ${cut}`);
});

test('stored values decode exactly as the generated decoder decodes them', () => {
  fc.assert(
    fc.property(value, (v) => {
      const bytes = Buffer.from(Value.encode(v).finish());
      assert.deepEqual(decodeValue(bytes), Value.decode(bytes));
    }),
    { numRuns: 2000 },
  );
});
