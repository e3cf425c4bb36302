/** The hand-written response encoder produces exactly the generated encoder's bytes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CommandResponse, type Kvpair, type Value } from '../src/protocol/generated/abi.js';
import { encodeResponsePayload, encodeResponseFrame } from '../src/protocol/response-encoder.js';
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
