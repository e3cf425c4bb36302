/**
 * Binary-safe names: how the bytes of a RESP table name, key or channel become the JavaScript
 * string protokv's stores and pub/sub use, and back.
 *
 * Bytes that are valid UTF-8 decode to the same string a protobuf client would send, so both
 * protocols name the same tables. Every byte that is not part of a valid UTF-8 sequence becomes a
 * lone low surrogate, U+DC80 to U+DCFF (the byte plus 0xDC00), as Python's `surrogateescape`
 * does. Valid UTF-8 never decodes to a lone surrogate, so the mapping is one-to-one and
 * {@link encodeName} restores the exact bytes. A protobuf listing (`TABLES`, `HSCAN`) encodes
 * strings as UTF-8, which writes each lone surrogate as U+FFFD: a name that is not UTF-8 shows
 * there with U+FFFD replacements while RESP clients keep seeing their bytes.
 */
import { isUtf8 } from 'node:buffer';

/** Strings are scanned for non-ASCII only up to this length before asking the native validator. */
const SHORT = 32;
const ESCAPE_BASE = 0xdc00;

/** The name spelled by `buf[start, end)`. */
export function decodeName(buf: Buffer, start: number, end: number): string {
  if (end - start <= SHORT) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if (buf[i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return buf.latin1Slice(start, end);
  }
  if (isUtf8(buf.subarray(start, end))) return buf.utf8Slice(start, end);
  return decodeEscaping(buf, start, end);
}

/** True when `buf[start, end)` is valid UTF-8. */
export function isUtf8Range(buf: Buffer, start: number, end: number): boolean {
  if (end - start <= SHORT) {
    let i = start;
    while (i < end && buf[i] < 0x80) i++;
    if (i === end) return true;
  }
  return isUtf8(buf.subarray(start, end));
}

/** The bytes of `name`: UTF-8, except that escaped bytes (U+DC80–U+DCFF alone) are restored. */
export function encodeName(name: string): Buffer {
  if (name.isWellFormed()) return Buffer.from(name, 'utf8');
  return Buffer.from(encodeEscaping(name));
}

/** Byte length of {@link encodeName}(name), without building it. */
export function nameByteLength(name: string): number {
  if (name.isWellFormed()) return Buffer.byteLength(name, 'utf8');
  return encodeEscaping(name).length;
}

/** Whether a name holds escaped bytes (was not valid UTF-8 over RESP). */
export function hasEscapedBytes(name: string): boolean {
  return !name.isWellFormed();
}

function decodeEscaping(buf: Buffer, start: number, end: number): string {
  let out = '';
  let i = start;
  let runStart = start;
  while (i < end) {
    const b = buf[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    const len = validSequenceLength(buf, i, end);
    if (len > 0) {
      i += len;
      continue;
    }
    if (runStart < i) out += buf.utf8Slice(runStart, i);
    out += String.fromCharCode(ESCAPE_BASE + b);
    i++;
    runStart = i;
  }
  if (runStart < end) out += buf.utf8Slice(runStart, end);
  return out;
}

/** Length of the well-formed UTF-8 sequence starting at `i` (Unicode table 3-7), or 0. */
function validSequenceLength(buf: Buffer, i: number, end: number): number {
  const b0 = buf[i];
  const cont = (at: number, lo = 0x80, hi = 0xbf): boolean => at < end && buf[at] >= lo && buf[at] <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (b0 === 0xe0) return cont(i + 1, 0xa0) && cont(i + 2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(i + 1) && cont(i + 2) ? 3 : 0;
  if (b0 === 0xed) return cont(i + 1, 0x80, 0x9f) && cont(i + 2) ? 3 : 0;
  if (b0 === 0xf0) return cont(i + 1, 0x90) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(i + 1) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  if (b0 === 0xf4) return cont(i + 1, 0x80, 0x8f) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  return 0;
}

function encodeEscaping(name: string): Uint8Array {
  const out: number[] = [];
  let runStart = 0;
  const flush = (to: number): void => {
    if (runStart < to) for (const b of Buffer.from(name.slice(runStart, to), 'utf8')) out.push(b);
  };
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff) {
      const next = i + 1 < name.length ? name.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++; // a proper pair
        continue;
      }
    }
    // A lone surrogate: an escaped byte, or (never produced here) something else, written as U+FFFD.
    flush(i);
    if (c >= 0xdc80 && c <= 0xdcff) out.push(c - ESCAPE_BASE);
    else out.push(0xef, 0xbf, 0xbd);
    runStart = i + 1;
  }
  flush(name.length);
  return Uint8Array.from(out);
}
