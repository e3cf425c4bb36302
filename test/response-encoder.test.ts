/** The hand-written response encoder produces exactly the generated encoder's bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CommandResponse, type Kvpair, type Value } from '../src/protocol/generated/abi.js';
import {
  encodeLargeResponseFrame,
  encodeResponseFrame,
  encodeResponsePayload,
  isLargeResponse,
  OK_STATUS_SIZE,
  pairFieldSize,
  responseSize,
  valueFieldSize,
} from '../src/protocol/response-encoder.js';
import { encodeFrame, FrameDecoder } from '../src/codec/frame.js';

const value: fc.Arbitrary<Value> = fc.oneof(
  fc.constant<Value>({ value: undefined }),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s): Value => ({ value: { $case: 'string', value: s } })),
  fc.uint8Array({ maxLength: 40 }).map((b): Value => ({ value: { $case: 'binary', value: Buffer.from(b) } })),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map((n): Value => ({ value: { $case: 'integer', value: n } })),
  fc.constantFrom(0n, 1n, 127n, 128n, 2n ** 31n - 1n, 2n ** 31n, -1n).map((n): Value => ({ value: { $case: 'integer', value: n } })),
  fc.double().map((d): Value => ({ value: { $case: 'float', value: d } })),
  fc.boolean().map((b): Value => ({ value: { $case: 'bool', value: b } })),
);
const pair: fc.Arbitrary<Kvpair> = fc.record({ key: fc.string({ unit: 'binary', maxLength: 20 }), value: fc.option(value, { nil: undefined }) });
const response: fc.Arbitrary<CommandResponse> = fc.record({
  status: fc.oneof(fc.constantFrom(0, 200, 400, 404, 413, 500, 503), fc.nat()),
  message: fc.string({ unit: 'binary', maxLength: 60 }),
  values: fc.array(value, { maxLength: 8 }),
  pairs: fc.array(pair, { maxLength: 8 }),
});

test('payload bytes equal the generated encoder for any response', () => {
  fc.assert(
    fc.property(response, (res) => {
      assert.deepEqual(encodeResponsePayload(res), Buffer.from(CommandResponse.encode(res).finish()));
    }),
    { numRuns: 2000 },
  );
});

test('frames equal the frame codec applied to the generated encoding, small and large', () => {
  const big: CommandResponse = { status: 200, message: '', values: [], pairs: Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: { value: { $case: 'string', value: 'v'.repeat(50) } } })) };
  const small: CommandResponse = { status: 200, message: '', values: [{ value: { $case: 'integer', value: -5n } }], pairs: [] };
  for (const res of [big, small]) {
    const ours = encodeResponseFrame(res);
    const d = new FrameDecoder();
    d.push(ours);
    assert.deepEqual(CommandResponse.decode(d.next()!), res);
    if (ours.readUInt32BE(0) >>> 31 === 0) assert.deepEqual(ours, encodeFrame(CommandResponse.encode(res).finish()));
  }
});

test('large responses are encoded in slices, between turns of the event loop, to the same bytes', async () => {
  const pairs: Kvpair[] = Array.from({ length: 100_000 }, (_, i) => ({ key: `key-${i}`, value: { value: { $case: 'string', value: `value ${i} ${'x'.repeat(i % 50)}` } } }));
  const res: CommandResponse = { status: 200, message: '', values: [{ value: { $case: 'integer', value: 7n } }], pairs };
  const size = responseSize(res);
  assert.ok(isLargeResponse(size));
  let turns = 0;
  let done = false;
  const tick = (): void => {
    turns++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  const pieces = await encodeLargeResponseFrame(res);
  done = true;
  assert.ok(turns >= 3, `encoding a ${size}-byte response took only ${turns} turns of the event loop`);
  const d = new FrameDecoder();
  d.push(Buffer.concat(pieces));
  assert.deepEqual(d.next(), Buffer.from(CommandResponse.encode(res).finish()));
});

test('large binary values are written by reference, to the same bytes', async () => {
  const big = (n: number, fill: number): Value => ({ value: { $case: 'binary', value: Buffer.alloc(n, fill) } });
  const res: CommandResponse = {
    status: 200,
    message: '',
    values: [big(3 * 1024 * 1024, 1), { value: { $case: 'string', value: 'between' } }, big(64 * 1024, 2), big(64 * 1024 - 1, 3)],
    pairs: [
      { key: 'a', value: big(2 * 1024 * 1024, 4) },
      { key: 'b', value: undefined },
      { key: '', value: big(100, 5) },
    ],
  };
  const d = new FrameDecoder(16 * 1024 * 1024);
  d.push(Buffer.concat(await encodeLargeResponseFrame(res)));
  assert.deepEqual(d.next(), Buffer.from(CommandResponse.encode(res).finish()));
});

test('field sizes add up to the response size', () => {
  fc.assert(
    fc.property(response, (res) => {
      let size = responseSize({ ...res, values: [], pairs: [] });
      for (const v of res.values) size += valueFieldSize(v);
      for (const p of res.pairs) size += pairFieldSize(p);
      assert.equal(size, responseSize(res));
      assert.equal(responseSize({ status: 200, message: '', values: [], pairs: [] }), OK_STATUS_SIZE);
    }),
  );
});
