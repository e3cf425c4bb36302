/**
 * How the persistent store lays tables out in its LMDB database, and its cursors.
 *
 * One database, raw binary keys, sorted bytewise:
 * - An entry's key is `escape(table) 0x00 key` in UTF-8 (extended to lone surrogates, see
 *   wtf8.ts, so names the RESP listener derives from non-UTF-8 bytes survive). Table names are escaped so they never
 *   contain a 0x00 byte, which makes `escape(table) 0x00` a prefix that no other table's keys start
 *   with: a table is the contiguous key range `[escape(table) 0x00, escape(table) 0x01)`.
 *   (lmdb-js array keys were not used: its ordered-binary encoding writes strings of 64 characters
 *   or more without escaping NUL, so tables named `t` and `t + "\0…"` could overlap.)
 * - protokv's own records start with 0xFF, a byte UTF-8 never uses, so they sort after every entry
 *   and can never be mistaken for one:
 *   - `0xFF 'c' escape(table)` → the table's number of keys (6 bytes, big-endian), present only
 *     for non-empty tables; listing this range lists the tables in name order;
 *   - `0xFF 'd' escape(table)` → a drop still deleting the table's entries in the background (its
 *     key count at the drop); opening the store finishes it;
 *   - `0xFF 'f'` → the layout version, written when the database is created (or its counts were
 *     rebuilt): databases without it predate the counts;
 *   - `0xFF 'n'` → the number of the latest batch of writes committed with periodic durability
 *     (6 bytes, big-endian), which tells which batches a commit holds (see lmdb-writer.ts).
 * - An entry's value is the protobuf encoding of `Value`, so its type survives restarts.
 */
import { errors } from '../errors.js';
import { bytesText, textBytes } from './wtf8.js';

/** The largest key lmdb-js accepts with its default page size. */
export const MAX_KEY_BYTES = 1978;

/** The layout version this code writes and reads. */
export const LAYOUT_VERSION = 1;
/** Where the layout version is kept. */
export const LAYOUT_KEY = Buffer.from([0xff, 0x66]);

/** Where the number of the latest batch committed with periodic durability is kept. */
export const MARKER_KEY = Buffer.from([0xff, 0x6e]);

const COUNT_PREFIX = Buffer.from([0xff, 0x63]);
const DROP_PREFIX = Buffer.from([0xff, 0x64]);
/** The range of unfinished drops. */
export const DROPS_RANGE = { start: DROP_PREFIX, end: Buffer.from([0xff, 0x65]) };

/** Everything that is an entry (all keys below the first protokv record). */
export const ENTRIES_END = Buffer.from([0xff]);
/** The range of table counts. */
export const COUNTS_RANGE = { start: COUNT_PREFIX, end: Buffer.from([0xff, 0x64]) };

/** Escapes U+0000 and U+0001 (the only characters encoded with bytes 0x00 and 0x01). */
export function escapeTable(table: string): string {
  return table.replaceAll('\x01', '\x01\x02').replaceAll('\0', '\x01\x01');
}

/** The inverse of `escapeTable`. */
export function unescapeTable(escaped: string): string {
  // One left-to-right pass: two passes of replaceAll would turn an escaped "\x01\x01" into NUL.
  // eslint-disable-next-line no-control-regex
  return escaped.replace(/\x01([\x01\x02])/g, (_, c: string) => (c === '\x01' ? '\0' : '\x01'));
}

/** The key range holding every entry of `table`, and the length of its prefix. */
export function tableRange(table: string): { start: Buffer; end: Buffer; prefixLength: number } {
  const escaped = escapeTable(table);
  const start = textBytes(`${escaped}\0`);
  return { start, end: textBytes(`${escaped}\x01`), prefixLength: start.length };
}

/** The key part of an entry's database key (its table prefix is `prefixLength` bytes). */
export function keyOfEntry(dbKey: Buffer, prefixLength: number): string {
  return bytesText(dbKey, prefixLength);
}

export function entryKey(table: string, key: string): Buffer {
  return textBytes(`${escapeTable(table)}\0${key}`);
}

/** The database key for a write; a key LMDB cannot hold is refused. */
export function writeKey(table: string, key: string): Buffer {
  const k = entryKey(table, key);
  if (k.length > MAX_KEY_BYTES) {
    throw errors.storage(
      `key too long: the table name and key take ${k.length} bytes encoded, the limit is ${MAX_KEY_BYTES} bytes`,
    );
  }
  return k;
}

/** The database key for a lookup, or `undefined` for a key too long to have been stored. */
export function readKey(table: string, key: string): Buffer | undefined {
  const k = entryKey(table, key);
  return k.length > MAX_KEY_BYTES ? undefined : k;
}

/** The escaped table name an entry key belongs to, as the raw bytes before its 0x00; -1 if none. */
export function tablePrefixLength(key: Buffer): number {
  return key.indexOf(0);
}

export function countKey(table: string): Buffer {
  return Buffer.concat([COUNT_PREFIX, textBytes(escapeTable(table))]);
}

/** The count key of a table given its escaped name as bytes. */
export function countKeyOfEscaped(escaped: Buffer): Buffer {
  return Buffer.concat([COUNT_PREFIX, escaped]);
}

/** The table a count key counts. */
export function tableOfCountKey(key: Buffer): string {
  return unescapeTable(bytesText(key, COUNT_PREFIX.length));
}

export function dropKey(table: string): Buffer {
  return Buffer.concat([DROP_PREFIX, textBytes(escapeTable(table))]);
}

/** The table a drop record is about. */
export function tableOfDropKey(key: Buffer): string {
  return unescapeTable(bytesText(key, DROP_PREFIX.length));
}

export function encodeCount(n: number): Buffer {
  const b = Buffer.allocUnsafe(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

export function decodeCount(b: Buffer | undefined): number {
  if (b === undefined) return 0;
  if (b.length !== 6) throw errors.storage(`a table count is corrupt (${b.length} bytes)`);
  return b.readUIntBE(0, 6);
}

// Cursors: a tag and the base64url of the bytes of the last item returned (an HSCAN key, a TABLES
// escaped table name). The next page starts right after those bytes (an exclusive range start).
// Bytes, not positions, so writes between pages cannot shift it.
const SCAN_TAG = 'k';
const TABLES_TAG = 't';
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function toCursor(tag: string, bytes: Buffer): string {
  return tag + bytes.toString('base64url');
}

/** The bytes of a cursor; refuses anything `toCursor` could not have produced. */
function fromCursor(tag: string, cursor: string): Buffer {
  const body = cursor.slice(1);
  if (cursor[0] === tag && BASE64URL.test(body)) {
    const bytes = Buffer.from(body, 'base64url');
    if (bytes.toString('base64url') === body && bytes.length <= MAX_KEY_BYTES) return bytes;
  }
  throw errors.invalidCursor(cursor);
}

/** The cursor resuming a scan after `key` (an entry key whose table prefix is `prefixLength` bytes). */
export function scanCursor(key: Buffer, prefixLength: number): string {
  return toCursor(SCAN_TAG, key.subarray(prefixLength));
}

/** A range start, and whether it is excluded. */
export interface RangeStart {
  start: Buffer;
  exclusiveStart: boolean;
}

/** Where a scan of the table whose range starts at `start` resumes for `cursor`. */
export function scanStart(start: Buffer, cursor: string): RangeStart {
  if (cursor === '') return { start, exclusiveStart: false };
  const from = Buffer.concat([start, fromCursor(SCAN_TAG, cursor)]);
  if (from.length > MAX_KEY_BYTES) throw errors.invalidCursor(cursor); // no key that long was stored
  return { start: from, exclusiveStart: true };
}

export function tablesCursor(countKeyBytes: Buffer): string {
  return toCursor(TABLES_TAG, countKeyBytes.subarray(COUNT_PREFIX.length));
}

/** Where a listing of tables resumes for `cursor`. */
export function tablesStart(cursor: string): RangeStart {
  if (cursor === '') return { start: COUNTS_RANGE.start, exclusiveStart: false };
  return { start: Buffer.concat([COUNT_PREFIX, fromCursor(TABLES_TAG, cursor)]), exclusiveStart: true };
}
