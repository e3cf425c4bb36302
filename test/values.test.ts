import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '../src/protocol/generated/abi.js';
import { EMPTY_VALUE, fromValue, isEmptyValue, toValue } from '../src/protocol/values.js';

function roundTrip(v: Value): Value {
  return Value.decode(Value.encode(v).finish());
}

test('every JS type maps to its own Value field and back', () => {
  const cases = ['', 'héllo', 0n, -7n, 1.5, 0, true, false, null, Buffer.from([0, 255])] as const;
  for (const js of cases) {
    const back = fromValue(roundTrip(toValue(js)));
    assert.deepEqual(back, js);
    assert.equal(typeof back, typeof js);
  }
});

test('integer and float stay apart: 1n is an integer, 1 is a float', () => {
  assert.equal(toValue(1n).value?.$case, 'integer');
  assert.equal(toValue(1).value?.$case, 'float');
  assert.equal(typeof fromValue(roundTrip(toValue(1))), 'number');
  assert.equal(typeof fromValue(roundTrip(toValue(1n))), 'bigint');
});

test('int64 round-trips exactly over its whole range', () => {
  const edges = [0n, 1n, -1n, (1n << 53n) + 1n, -(1n << 53n) - 1n, (1n << 63n) - 1n, -(1n << 63n), 1234567890123456789n];
  for (const n of edges) assert.equal(fromValue(roundTrip(toValue(n))), n);
});

test('integers outside int64 are refused with a clear error', () => {
  assert.throws(() => toValue(1n << 63n), /outside the int64 range/);
  assert.throws(() => toValue(-(1n << 63n) - 1n), /outside the int64 range/);
});

test('unsupported JS values are refused with a clear error', () => {
  assert.throws(() => toValue(undefined as never), /cannot convert undefined/);
  assert.throws(() => toValue({} as never), /cannot convert Object/);
});

test('the empty value encodes to zero bytes and reads back as null', () => {
  assert.equal(Value.encode(EMPTY_VALUE).finish().length, 0);
  assert.equal(isEmptyValue(roundTrip(EMPTY_VALUE)), true);
  assert.equal(fromValue(undefined), null);
});

test('a plain Uint8Array becomes binary without a copy', () => {
  const u = new Uint8Array([1, 2, 3]);
  const v = toValue(u);
  assert.equal(v.value?.$case, 'binary');
  assert.deepEqual(fromValue(roundTrip(v)), Buffer.from([1, 2, 3]));
});
