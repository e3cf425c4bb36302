/**
 * The paging commands as the console uses them: one page of a table (`HSCAN`) or of the table
 * names (`TABLES`), and a table's size (`HLEN`), from raw responses, with a non-2xx status
 * turned into an error that carries it.
 */
import { ProtokvError, requests, type CommandResponse, type KvClient, type KvValue } from '../../browser/index.js';
import { fromValue } from '../../protocol/values.js';

/** One page: its pairs, and the cursor of the next page (`''` when this was the last). */
export interface Page {
  pairs: [string, KvValue][];
  next: string;
}

function check(response: CommandResponse): CommandResponse {
  if (response.status < 200 || response.status >= 300) throw new ProtokvError(response.status, response.message);
  return response;
}

function page(response: CommandResponse): Page {
  check(response);
  const next = fromValue(response.values[0]);
  return { pairs: response.pairs.map((p) => [p.key, fromValue(p.value)]), next: typeof next === 'string' ? next : '' };
}

/** One page of `table`'s pairs. */
export async function scanPage(kv: KvClient, table: string, cursor: string, count: number): Promise<Page> {
  return page(await kv.send(requests.hscan(table, cursor, count)));
}

/** One page of table names with their key counts. */
export async function tablesPage(kv: KvClient, cursor: string, count: number): Promise<Page> {
  return page(await kv.send(requests.tables(cursor, count)));
}

/** The number of keys in `table`. */
export async function tableSize(kv: KvClient, table: string): Promise<bigint> {
  const n = fromValue(check(await kv.send(requests.hlen(table))).values[0]);
  return typeof n === 'bigint' ? n : 0n;
}

/** Removes `table`; resolves to the number of keys removed. */
export async function dropTable(kv: KvClient, table: string): Promise<bigint> {
  const n = fromValue(check(await kv.send(requests.hdrop(table))).values[0]);
  return typeof n === 'bigint' ? n : 0n;
}
