/**
 * Typed values as the console shows and edits them: each of the six kinds of `Value` (SPEC 1.3)
 * has a name, a way to be written as text in an input, and a way to be displayed. Integers stay
 * `bigint` end to end, so int64 values beyond 2^53 are edited exactly.
 */
import type { KvValue } from '../protocol/values.js';

/** The kinds of value, as the console names them. */
export const VALUE_TYPES = ['string', 'binary', 'integer', 'float', 'bool', 'empty'] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

/** A value that cannot be read as the chosen type; the message says what was expected. */
export class ValueTextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueTextError';
  }
}

/** The kind of a value. */
export function typeOf(value: KvValue): ValueType {
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'bigint':
      return 'integer';
    case 'number':
      return 'float';
    case 'boolean':
      return 'bool';
    default:
      return value === null ? 'empty' : 'binary';
  }
}

/** The text an editor shows for `value`; `parseValueText(typeOf(value), text)` gives it back. */
export function valueToText(value: KvValue): string {
  if (value === null) return '';
  if (value instanceof Uint8Array) return toBase64(value);
  return String(value);
}

/** Reads `text` as a value of `type`; throws `ValueTextError` when it is not one. */
export function parseValueText(type: ValueType, text: string): KvValue {
  switch (type) {
    case 'string':
      return text;
    case 'binary':
      return fromBase64(text);
    case 'integer': {
      const t = text.trim();
      if (!/^[+-]?\d+$/.test(t)) throw new ValueTextError(`${JSON.stringify(text)} is not an integer: expected digits, e.g. -42`);
      const n = BigInt(t);
      if (n < INT64_MIN || n > INT64_MAX) throw new ValueTextError(`${t} is outside the int64 range (${INT64_MIN} to ${INT64_MAX})`);
      return n;
    }
    case 'float': {
      const t = text.trim();
      const special: Record<string, number> = { NaN: NaN, Infinity: Infinity, '+Infinity': Infinity, '-Infinity': -Infinity };
      if (t in special) return special[t];
      const n = Number(t);
      if (t === '' || !Number.isFinite(n)) throw new ValueTextError(`${JSON.stringify(text)} is not a number: expected e.g. 1.5, -2e10, NaN or Infinity`);
      return n;
    }
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (t === 'true') return true;
      if (t === 'false') return false;
      throw new ValueTextError(`${JSON.stringify(text)} is not a bool: expected true or false`);
    }
    case 'empty':
      return null;
  }
}

/** How a value reads in a listing: strings as they are, bytes in hex, numbers in full. */
export function displayValue(value: KvValue, maxChars = 200): string {
  if (value instanceof Uint8Array) {
    const shown = Math.min(value.length, Math.floor(maxChars / 3));
    let hex = '';
    for (let i = 0; i < shown; i++) hex += (i === 0 ? '' : ' ') + value[i].toString(16).padStart(2, '0');
    return value.length > shown ? `${hex} … (${value.length} bytes)` : hex;
  }
  if (value === null) return '';
  const text = typeof value === 'number' ? formatFloat(value) : String(value);
  return text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length} characters)` : text;
}

/** A float written so it reads as one: `1` shows as `1.0`, other values in shortest form. */
export function formatFloat(n: number): string {
  return Number.isInteger(n) && Math.abs(n) < 1e21 ? n.toFixed(1) : String(n);
}

/** Standard base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step) binary += String.fromCharCode(...bytes.subarray(i, i + step));
  return btoa(binary);
}

/** Bytes from standard base64 (whitespace ignored); throws `ValueTextError` for anything else. */
export function fromBase64(text: string): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/.test(compact)) {
    throw new ValueTextError('binary values are written in base64, e.g. AQID for the bytes 01 02 03');
  }
  const binary = atob(compact);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
