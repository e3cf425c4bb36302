/**
 * Pages of exactly at most `count` items out of Redis's SCAN family (HSCAN over a table, SCAN over
 * a node's keyspace), keeping SCAN's guarantee: an item present for the whole listing is returned
 * at least once, one absent for the whole listing never.
 *
 * Redis's COUNT is only a hint: a call returns whole hash buckets (a few items more than asked),
 * and a small hash (listpack encoding) comes back whole whatever COUNT says. So:
 * - a batch that does not fit in the page is left for the next page, re-read from the same Redis
 *   cursor (re-reading a cursor is safe: its batch then covers the same buckets or more);
 * - when the collection comes whole in one batch, it is paged in key order and the cursor holds
 *   the last key returned;
 * - when even the smallest batch is larger than the page (a page of 1 or 2 over a bucket of 3),
 *   part of it is returned and the cursor remembers a digest of each key returned from it.
 *
 * Cursors travel to clients as opaque strings: base64url of a small JSON array.
 */
import { createHash } from 'node:crypto';
import { errors } from '../errors.js';

/** Where a listing stands. */
export interface ScanPosition {
  /** Redis's cursor ("0" to start). */
  readonly cursor: string;
  /** Key-order mode: the last key returned from a collection that comes whole. */
  readonly after?: string;
  /** Digests of the keys already returned from the batch at `cursor`. */
  readonly carry?: readonly string[];
}

/** One call of the SCAN command: the items of the batch and Redis's next cursor ("0" at the end). */
export interface ScanBatch<T> {
  readonly next: string;
  readonly items: T[];
}

/** Runs the SCAN command from `cursor` with a COUNT hint of `hint`. */
export type ScanFetch<T> = (cursor: string, hint: number) => Promise<ScanBatch<T>>;

/** At most this many SCAN calls per page, so a page over a sparse keyspace stays short. */
const MAX_CALLS_PER_PAGE = 24;

export const START: ScanPosition = { cursor: '0' };

/**
 * Reads one page of at most `count` items from `position`; `next` is undefined when the listing is
 * complete. The page may be shorter than `count` (even empty) before the end.
 */
export async function scanPage<T>(
  position: ScanPosition,
  count: number,
  fetch: ScanFetch<T>,
  keyOf: (item: T) => string,
): Promise<{ items: T[]; next: ScanPosition | undefined }> {
  const out: T[] = [];
  let { cursor, after, carry } = position;
  // Ask for a little less than the room left: a batch usually overshoots its hint by a few.
  let hint = roomHint(count);
  for (let calls = 0; calls < MAX_CALLS_PER_PAGE; calls++) {
    const batch = await fetch(cursor, hint);
    if (cursor === '0' && batch.next === '0') {
      // The whole collection in one batch: page through it in key order.
      const rest = batch.items.filter((item) => after === undefined || keyOf(item) > after);
      rest.sort((a, b) => compare(keyOf(a), keyOf(b)));
      if (rest.length <= count) return { items: rest, next: undefined };
      const page = rest.slice(0, count);
      return { items: page, next: { cursor: '0', after: keyOf(page[page.length - 1]) } };
    }
    // Key-order mode over a collection that has since grown: start over (repeats, never misses).
    after = undefined;
    const seen = carry === undefined ? undefined : new Set(carry);
    const fresh = seen === undefined ? batch.items : batch.items.filter((item) => !seen.has(digest(keyOf(item))));
    if (out.length + fresh.length <= count) {
      for (const item of fresh) out.push(item);
      cursor = batch.next;
      carry = undefined;
      if (cursor === '0') return { items: out, next: undefined };
      // Half a page is a good page; another round trip for the rest is not worth it.
      if (out.length * 2 >= count) break;
      hint = roomHint(count - out.length);
      continue;
    }
    if (out.length > 0) break; // leave this batch for the next page
    if (hint > 1) {
      hint = Math.max(1, hint >> 1);
      continue;
    }
    // Even the smallest batch overflows the page: return part of it, remember which part.
    const page = fresh.slice(0, count);
    return { items: page, next: { cursor, carry: [...(carry ?? []), ...page.map((item) => digest(keyOf(item)))] } };
  }
  return { items: out, next: { cursor, carry } };
}

function roomHint(room: number): number {
  return Math.max(1, Math.floor(room * 0.9));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A short, collision-resistant digest of a key (cursors stay small whatever the keys' length). */
function digest(key: string): string {
  return createHash('sha1').update(key).digest('base64url').slice(0, 16);
}

/** The cursor string of a position, with an optional leading field (the node of a TABLES listing). */
export function encodeCursor(position: ScanPosition | undefined, lead?: number): string {
  if (position === undefined) return '';
  const fields: unknown[] = [position.cursor, position.after ?? null, position.carry ?? null];
  if (lead !== undefined) fields.unshift(lead);
  return Buffer.from(JSON.stringify(fields)).toString('base64url');
}

/**
 * Reads a cursor made by {@link encodeCursor} ("" is the start); a malformed one throws the 400
 * `errors.invalidCursor`. `withLead` says whether the cursor carries a leading number.
 */
export function decodeCursor(text: string, withLead: boolean): { lead: number; position: ScanPosition } {
  if (text === '') return { lead: 0, position: START };
  let fields: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new Error('not base64url');
    fields = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw errors.invalidCursor(text);
  }
  if (!Array.isArray(fields) || fields.length !== (withLead ? 4 : 3)) throw errors.invalidCursor(text);
  const lead = withLead ? (fields.shift() as unknown) : 0;
  const [cursor, after, carry] = fields as unknown[];
  const valid =
    typeof lead === 'number' &&
    Number.isSafeInteger(lead) &&
    lead >= 0 &&
    typeof cursor === 'string' &&
    /^\d{1,20}$/.test(cursor) &&
    (after === null || (typeof after === 'string' && cursor === '0')) &&
    (carry === null || (Array.isArray(carry) && carry.length <= 10_000 && carry.every((d) => typeof d === 'string' && d.length === 16)));
  if (!valid) throw errors.invalidCursor(text);
  const position: { cursor: string; after?: string; carry?: string[] } = { cursor };
  if (after !== null) position.after = after;
  if (carry !== null) position.carry = carry as string[];
  return { lead: lead, position };
}
