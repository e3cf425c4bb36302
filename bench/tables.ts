/**
 * The table commands at scale, in-process through `Service.execute` on both stores: fill a table
 * of N keys (default 1,000,000), scan it whole with HSCAN pages of 100 and of 1,000, HLEN it, list
 * 10,000 tables with TABLES, and HDROP it. Prints a markdown table.
 *
 * `npm run bench:tables` (`-- --keys 100000` for a shorter run, `-- --store memory|lmdb` for one store).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import type { Store } from '../src/storage/store.js';
import { requests } from '../src/protocol/requests.js';
import type { CommandRequest, CommandResponse } from '../src/protocol/generated/abi.js';
import { fromValue } from '../src/protocol/values.js';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const KEYS = Number(option('keys', '1000000'));
const TABLE_COUNT = Number(option('tables', '10000'));
const STORES = option('store', 'memory,lmdb').split(',');
/** Pairs per HMSET while filling, and HMSETs in flight (group commit on LMDB). */
const BATCH = 1000;
const IN_FLIGHT = 8;

interface Row {
  store: string;
  what: string;
  ms: number;
  detail: string;
}
const rows: Row[] = [];

function record(store: string, what: string, ms: number, detail = ''): void {
  rows.push({ store, what, ms, detail });
  process.stderr.write(`${store} ${what}: ${ms.toFixed(1)} ms ${detail}\n`);
}

async function run(service: Service, request: CommandRequest): Promise<CommandResponse> {
  const r = await service.execute(request);
  if (r.status !== 200) throw new Error(`unexpected status ${r.status}: ${r.message}`);
  return r;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, performance.now() - start];
}

/** Fills `table` with `n` keys of 32-byte string values, `IN_FLIGHT` HMSETs at a time. */
async function fill(service: Service, table: string, n: number): Promise<void> {
  const value = 'v'.repeat(32);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const from = next;
      next = Math.min(n, next + BATCH);
      await run(service, requests.hmset(table, Array.from({ length: next - from }, (_, i) => [`key:${from + i}`, value] as const)));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

/** Scans `table` whole; returns the number of keys seen and of pages. */
async function scanAll(service: Service, table: string, count: number): Promise<{ keys: number; pages: number }> {
  let cursor = '';
  let keys = 0;
  let pages = 0;
  do {
    const r = await run(service, requests.hscan(table, cursor, count));
    keys += r.pairs.length;
    pages++;
    cursor = fromValue(r.values[0]) as string;
  } while (cursor !== '');
  return { keys, pages };
}

async function bench(name: string, store: Store): Promise<void> {
  const service = new Service({ store });
  const table = 'big';
  let [, ms] = await timed(() => fill(service, table, KEYS));
  record(name, `fill ${KEYS.toLocaleString('en-US')} keys (HMSET of ${BATCH}, ${IN_FLIGHT} in flight)`, ms, `${Math.round((KEYS * 1000) / ms).toLocaleString('en-US')} keys/s`);

  for (const count of [100, 1000]) {
    const [seen, t] = await timed(() => scanAll(service, table, count));
    if (seen.keys !== KEYS) throw new Error(`HSCAN count ${count} saw ${seen.keys} keys of ${KEYS}`);
    record(name, `full HSCAN, count ${count}`, t, `${seen.pages.toLocaleString('en-US')} pages, ${Math.round((KEYS * 1000) / t).toLocaleString('en-US')} keys/s`);
  }

  const hlens = 10_000;
  [, ms] = await timed(async () => {
    for (let i = 0; i < hlens; i++) {
      const r = await run(service, requests.hlen(table));
      if (fromValue(r.values[0]) !== BigInt(KEYS)) throw new Error('HLEN is wrong');
    }
  });
  record(name, `HLEN of the ${KEYS.toLocaleString('en-US')}-key table`, ms / hlens, `mean of ${hlens.toLocaleString('en-US')}`);

  [, ms] = await timed(async () => {
    for (let i = 0; i < TABLE_COUNT; i += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, TABLE_COUNT - i) }, (_, k) => run(service, requests.hset(`table:${i + k}`, 'k', 1n))));
    }
  });
  record(name, `create ${TABLE_COUNT.toLocaleString('en-US')} more tables (HSET)`, ms);
  for (const count of [100, 1000]) {
    const [listed, t] = await timed(async () => {
      let cursor = '';
      let n = 0;
      do {
        const r = await run(service, requests.tables(cursor, count));
        n += r.pairs.length;
        cursor = fromValue(r.values[0]) as string;
      } while (cursor !== '');
      return n;
    });
    if (listed !== TABLE_COUNT + 1) throw new Error(`TABLES listed ${listed} tables of ${TABLE_COUNT + 1}`);
    record(name, `full TABLES of ${listed.toLocaleString('en-US')} tables, count ${count}`, t);
  }

  // HDROP, then an HSET to the same table: on LMDB it waits until the old entries are deleted.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const start = performance.now();
  const dropped = await run(service, requests.hdrop(table));
  const acknowledged = performance.now() - start;
  if (fromValue(dropped.values[0]) !== BigInt(KEYS)) throw new Error('HDROP answered a wrong count');
  await run(service, requests.hset(table, 'after', 1n));
  const done = performance.now() - start;
  loop.disable();
  record(name, `HDROP of ${KEYS.toLocaleString('en-US')} keys, acknowledged`, acknowledged);
  record(name, 'HDROP, until a write to the table is answered', done, `longest event-loop stall meanwhile ${(loop.max / 1e6).toFixed(0)} ms`);
  await service.close();
}

for (const name of STORES) {
  if (name === 'memory') await bench('memory', new MemoryStore());
  else if (name === 'lmdb') {
    const dir = mkdtempSync(join(tmpdir(), 'protokv-tables-'));
    try {
      await bench('lmdb', LmdbStore.open(dir));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else throw new Error(`unknown store ${name}`);
}

const out = ['| store | measurement | ms | |', '|---|---|---:|---|'];
for (const r of rows) out.push(`| ${r.store} | ${r.what} | ${r.ms < 10 ? r.ms.toFixed(3) : r.ms.toFixed(0)} | ${r.detail} |`);
process.stdout.write(`\nprotokv table commands, Node ${process.version}, in-process through Service.execute.\n\n${out.join('\n')}\n`);
