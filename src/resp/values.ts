/**
 * protokv values as RESP sees them, and Redis's number syntax.
 *
 * A RESP argument becomes a `string` value when it is valid UTF-8 and a `binary` value otherwise.
 * Read back, every type renders as bytes: strings as UTF-8, binary verbatim, integers in decimal,
 * floats with the shortest digits that read back to the same double (written without an
 * exponent, as Redis writes `HINCRBYFLOAT` results), bools as `true`/`false`, the empty value as
 * the empty string.
 *
 * Numbers given as arguments follow Redis's rules: integers are what `string2ll` accepts (no
 * sign other than a leading `-`, no leading zeros, no spaces, within int64), floats what
 * `strtold` reads whole, without leading space and not NaN.
 */
import type { Value } from '../protocol/generated/abi.js';
import { isUtf8Range } from './names.js';

export const INT64_MIN = -(1n << 63n);
export const INT64_MAX = (1n << 63n) - 1n;

/** The value a RESP argument stores: `string` when it is UTF-8, else `binary` (copied). */
export function argValue(buf: Buffer, start: number, end: number): Value {
  if (isUtf8Range(buf, start, end)) return { value: { $case: 'string', value: buf.utf8Slice(start, end) } };
  return { value: { $case: 'binary', value: Buffer.from(buf.subarray(start, end)) } };
}

/**
 * The bytes a value renders as, as a string (for `string`, `integer`, `float`, `bool`, empty)
 * or a Buffer (for `binary`). Callers that write replies use it to avoid building Buffers for
 * the common text cases.
 */
export function renderValue(value: Value | undefined): string | Buffer {
  const inner = value?.value;
  if (inner === undefined) return '';
  switch (inner.$case) {
    case 'string':
      return inner.value;
    case 'binary':
      return inner.value;
    case 'integer':
      return inner.value.toString();
    case 'float':
      return formatFloat(inner.value);
    case 'bool':
      return inner.value ? 'true' : 'false';
  }
}

/** The value's rendered length in bytes (`HSTRLEN`). */
export function renderedLength(value: Value | undefined): number {
  const r = renderValue(value);
  return typeof r === 'string' ? Buffer.byteLength(r, 'utf8') : r.length;
}

/** The value's rendering as bytes. */
export function renderedBytes(value: Value | undefined): Buffer {
  const r = renderValue(value);
  return typeof r === 'string' ? Buffer.from(r, 'utf8') : r;
}

/**
 * A double as text: the shortest digits that read back to the same double, positional (no
 * exponent) so `1e-7` is `0.0000001` as Redis writes it; `inf`, `-inf` and `nan` for the rest.
 */
export function formatFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  const text = String(x);
  const e = text.indexOf('e');
  if (e < 0) return text;
  // d.ddde±x → positional
  const negative = text.startsWith('-');
  const mantissa = text.slice(negative ? 1 : 0, e);
  const exponent = Number(text.slice(e + 1));
  const digits = mantissa.replace('.', '');
  const point = (mantissa.indexOf('.') < 0 ? mantissa.length : mantissa.indexOf('.')) + exponent;
  let out: string;
  if (point <= 0) out = `0.${'0'.repeat(-point)}${digits}`;
  else if (point >= digits.length) out = digits + '0'.repeat(point - digits.length);
  else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  return negative ? `-${out}` : out;
}

/** Longest text `string2ll` accepts (LONG_STR_SIZE − 1). */
const MAX_INTEGER_TEXT = 20;

/** `buf[start, end)` as an int64 under Redis's `string2ll` rules, or `undefined`. */
export function parseInteger(buf: Buffer, start: number, end: number): bigint | undefined {
  const len = end - start;
  if (len === 0 || len > MAX_INTEGER_TEXT) return undefined;
  let i = start;
  const negative = buf[i] === 0x2d;
  if (negative) {
    i++;
    if (i === end) return undefined;
  }
  const first = buf[i];
  if (first === 0x30) return len === 1 ? 0n : undefined;
  if (first < 0x31 || first > 0x39) return undefined;
  // Up to 15 digits fit a double exactly; longer ones go through BigInt.
  if (end - i <= 15) {
    let n = 0;
    for (; i < end; i++) {
      const d = buf[i] - 0x30;
      if (d < 0 || d > 9) return undefined;
      n = n * 10 + d;
    }
    return BigInt(negative ? -n : n);
  }
  for (let j = i; j < end; j++) if (buf[j] < 0x30 || buf[j] > 0x39) return undefined;
  const v = BigInt(buf.latin1Slice(i, end));
  const signed = negative ? -v : v;
  return signed < INT64_MIN || signed > INT64_MAX ? undefined : signed;
}

/** {@link parseInteger} of a string (a rendered stored value). */
export function parseIntegerText(text: string): bigint | undefined {
  if (text.length > MAX_INTEGER_TEXT || !/^-?\d+$/.test(text)) return undefined;
  const buf = Buffer.from(text, 'latin1');
  return parseInteger(buf, 0, buf.length);
}

const FLOAT_SYNTAX = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)$/i;

/**
 * A float under Redis's rules (`strtold` reading the whole text, no leading space, not NaN,
 * not out of range); `undefined` when it is not one. Hexadecimal floats are not accepted.
 */
export function parseFloatText(text: string): number | undefined {
  if (text.length === 0 || text.length > 5 * 1024 || !FLOAT_SYNTAX.test(text)) return undefined;
  const lower = text.toLowerCase();
  if (lower.endsWith('inf') || lower.endsWith('infinity')) return lower.startsWith('-') ? -Infinity : Infinity;
  const x = Number(text);
  // Overflow to infinity or underflow of a non-zero literal to zero is ERANGE for strtold.
  if (!Number.isFinite(x)) return undefined;
  if (x === 0 && /[1-9]/.test(text.replace(/[eE].*$/, ''))) return undefined;
  return x;
}

/** {@link parseFloatText} of raw argument bytes (which are ASCII when they are a number at all). */
export function parseFloat(buf: Buffer, start: number, end: number): number | undefined {
  for (let i = start; i < end; i++) if (buf[i] >= 0x80) return undefined;
  return parseFloatText(buf.latin1Slice(start, end));
}
