/**
 * How the CLI prints values: a readable form for people, and the proto3 JSON mapping of `Value`
 * for machines (`{"integer":"42"}`, `{"binary":"AQI="}`, `{}` for the empty value), which is
 * exact for every type — int64 included.
 */
import type { KvValue } from '../protocol/values.js';

export function humanValue(v: KvValue | undefined): string {
  switch (typeof v) {
    case 'undefined':
      return '(none)';
    case 'string':
      return JSON.stringify(v);
    case 'bigint':
      return `(integer) ${v}`;
    case 'number':
      return `(float) ${Number.isInteger(v) ? v.toFixed(1) : String(v)}`;
    case 'boolean':
      return `(bool) ${v}`;
    default:
      return v === null ? '(empty)' : `(binary) ${Buffer.from(v).toString('base64')}`;
  }
}

export type JsonValue = Record<string, string | number | boolean>;

export function jsonValue(v: KvValue | undefined): JsonValue | null {
  switch (typeof v) {
    case 'undefined':
      return null;
    case 'string':
      return { string: v };
    case 'bigint':
      return { integer: v.toString() };
    case 'number':
      return { float: Number.isFinite(v) ? v : String(v) };
    case 'boolean':
      return { bool: v };
    default:
      return v === null ? {} : { binary: Buffer.from(v).toString('base64') };
  }
}
