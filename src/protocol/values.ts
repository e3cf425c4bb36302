/**
 * Conversions between plain JavaScript values and the protocol's typed `Value`.
 *
 * The mapping is one-to-one so a value always comes back with the type it was stored with:
 *
 * | JavaScript            | `Value` field |
 * |-----------------------|---------------|
 * | `string`              | `string`      |
 * | `Uint8Array`/`Buffer` | `binary`      |
 * | `bigint`              | `integer` (int64, exact over its whole range) |
 * | `number`              | `float` (double) |
 * | `boolean`             | `bool`        |
 * | `null`                | empty value   |
 *
 * Integers are `bigint` rather than `number` because a `number` cannot tell `1` from `1.0`
 * and cannot hold every int64; use `42n` (or `BigInt(x)`) to store an integer.
 */
import type { Kvpair, Value } from './generated/abi.js';

/** A plain JavaScript value that maps one-to-one onto a protocol `Value`. */
export type KvValue = string | Uint8Array | bigint | number | boolean | null;

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** The empty value: a `Value` with no field of its oneof set. */
export const EMPTY_VALUE: Value = Object.freeze({ value: undefined });

/** Builds a `Value` from a JavaScript value (see the module doc for the mapping). */
export function toValue(v: KvValue): Value {
  switch (typeof v) {
    case 'string':
      return { value: { $case: 'string', value: v } };
    case 'bigint':
      if (v < INT64_MIN || v > INT64_MAX) throw new RangeError(`integer ${v} is outside the int64 range`);
      return { value: { $case: 'integer', value: v } };
    case 'number':
      return { value: { $case: 'float', value: v } };
    case 'boolean':
      return { value: { $case: 'bool', value: v } };
    case 'object':
      if (v === null) return { value: undefined };
      if (v instanceof Uint8Array) {
        return { value: { $case: 'binary', value: Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength) } };
      }
  }
  throw new TypeError(`cannot convert ${describe(v)} to a protokv value (use string, Uint8Array, bigint, number, boolean or null)`);
}

/** Reads a `Value` back as a JavaScript value; the empty value (or a missing one) is `null`. */
export function fromValue(v: Value | undefined): KvValue {
  const inner = v?.value;
  return inner === undefined ? null : inner.value;
}

/** True when `v` is missing or has no field set. */
export function isEmptyValue(v: Value | undefined): boolean {
  return v?.value === undefined;
}

/** Builds a `Kvpair`. */
export function toPair(key: string, value: KvValue): Kvpair {
  return { key, value: toValue(value) };
}

/** Turns response pairs into a `Map` of JavaScript values. */
export function pairsToMap(pairs: readonly Kvpair[]): Map<string, KvValue> {
  const out = new Map<string, KvValue>();
  for (const p of pairs) out.set(p.key, fromValue(p.value));
  return out;
}

function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return typeof v;
}
