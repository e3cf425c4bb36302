/**
 * SCAN and HSCAN cursors. Redis clients expect a cursor to be a decimal integer ("0" starts and
 * ends a scan; several client libraries parse it as a number), while protokv's stores page with
 * opaque string cursors. The listener hands out integers and remembers which store cursor each
 * stands for. The table is bounded: past {@link MAX_CURSORS} live cursors the oldest are
 * forgotten, and using a forgotten cursor is answered with Redis's `invalid cursor` error.
 */
import { ReplyError } from './command.js';

export const MAX_CURSORS = 65_536;

interface Entry {
  /** The table an HSCAN cursor belongs to; `undefined` for SCAN. */
  readonly table: string | undefined;
  readonly storeCursor: string;
}

export class ScanCursors {
  readonly #entries = new Map<number, Entry>();
  #next = 1;

  /** The integer cursor to hand out for `storeCursor` ("" — the scan is complete — is 0). */
  issue(table: string | undefined, storeCursor: string): string {
    if (storeCursor === '') return '0';
    const id = this.#next++;
    this.#entries.set(id, { table, storeCursor });
    if (this.#entries.size > MAX_CURSORS) {
      const oldest = this.#entries.keys().next().value as number;
      this.#entries.delete(oldest);
    }
    return String(id);
  }

  /**
   * The store cursor behind integer cursor `text` ("0": "", a new scan). Throws Redis's
   * `invalid cursor` for text that is not an unsigned integer, and for a cursor this listener
   * did not hand out (or has forgotten) for `table`.
   */
  resolve(table: string | undefined, text: string): string {
    if (!/^\d+$/.test(text) || text.length > 20) throw new ReplyError('ERR invalid cursor');
    if (/^0+$/.test(text)) return '';
    const entry = this.#entries.get(Number(text));
    if (entry === undefined || entry.table !== table) throw new ReplyError('ERR invalid cursor');
    return entry.storeCursor;
  }

  get size(): number {
    return this.#entries.size;
  }
}
