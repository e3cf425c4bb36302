/**
 * The store on Redis — one server or a Redis Cluster — for running several stateless protokv
 * nodes over one shared, replicated engine (SPEC §9).
 *
 * Layout (see redis-layout.ts): one Redis hash per table, values in the protobuf encoding of
 * `Value`. Every read-modify-write is one Lua script (redis-scripts.ts), so previous values are
 * exact and multi-key writes atomic whichever node sends them.
 *
 * Read your writes: a table lives in one hash, hence on one master, and every command on it —
 * reads included — goes over the one connection to that master (no replica reads). Redis answers
 * a connection's commands in order, so a read sent after a write sees it, even before the write's
 * answer arrives.
 *
 * `?wait_replicas=N`: each write is followed, in the same pipeline, by `WAIT N timeout`; the write
 * is acknowledged only when N replicas have it, else it fails with 503 (it may still be applied:
 * Redis cannot undo it).
 *
 * Big tables: `getAll` and `iterate` read a table in one atomic HGETALL only up to
 * {@link ATOMIC_READ_LIMIT} keys; a larger one is read in HSCAN pages, so no single command blocks
 * a Redis node for long (such a read is not a snapshot).
 */
import { Value } from '../protocol/generated/abi.js';
import { decodeValue } from '../protocol/decoder.js';
import { errors } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Entry, Page, Store, TableInfo } from './store.js';
import { RedisEngine, type RedisEngineOptions, type RedisMaster } from './redis-engine.js';
import { RedisLayout } from './redis-layout.js';
import { decodeCursor, encodeCursor, scanPage, START, type ScanBatch, type ScanPosition } from './redis-paging.js';
import type { RedisTarget } from './redis-url.js';

/** Tables up to this many keys are read whole in one command; larger ones a page at a time. */
export const ATOMIC_READ_LIMIT = 10_000;
/** Page size when `getAll` or `iterate` pages through a large table. */
const READ_PAGE = 1000;

export class RedisStore implements Store {
  readonly engine: RedisEngine;
  readonly layout: RedisLayout;
  #closed = false;
  #closing: Promise<void> | undefined;

  constructor(engine: RedisEngine) {
    this.engine = engine;
    this.layout = new RedisLayout(engine.target.prefix);
  }

  /** Connects to the engine `target` names (see {@link RedisEngine.connect} for the errors). */
  static async open(target: RedisTarget, options: RedisEngineOptions & { logger?: Logger } = {}): Promise<RedisStore> {
    return new RedisStore(await RedisEngine.connect(target, options));
  }

  /** The engine's address, without its password. */
  get address(): string {
    return this.engine.address;
  }

  get(table: string, key: string): Promise<Value | undefined> {
    return this.#read(this.engine.client.hgetBuffer(this.#live(table), key)).then(decodeOptional);
  }

  contains(table: string, key: string): Promise<boolean> {
    return this.#read(this.engine.client.hexists(this.#live(table), key)).then((n) => n === 1);
  }

  set(table: string, key: string, value: Value): Promise<Value | undefined> {
    const hash = this.#live(table);
    const bytes = encode(value);
    return this.#write((c) => c.protokvSetBuffer(hash, key, bytes)).then(decodeOptional);
  }

  setMany(table: string, entries: readonly Entry[]): Promise<(Value | undefined)[]> {
    const hash = this.#live(table);
    if (entries.length === 0) return Promise.resolve([]);
    const args: (string | Buffer)[] = new Array<string | Buffer>(entries.length * 2);
    for (let i = 0; i < entries.length; i++) {
      args[2 * i] = entries[i].key;
      args[2 * i + 1] = encode(entries[i].value);
    }
    return this.#write((c) => c.protokvSetManyBuffer(hash, ...args)).then(decodeList);
  }

  del(table: string, key: string): Promise<Value | undefined> {
    const hash = this.#live(table);
    return this.#write((c) => c.protokvDelBuffer(hash, key)).then(decodeOptional);
  }

  delMany(table: string, keys: readonly string[]): Promise<(Value | undefined)[]> {
    const hash = this.#live(table);
    if (keys.length === 0) return Promise.resolve([]);
    return this.#write((c) => c.protokvDelManyBuffer(hash, ...keys)).then(decodeList);
  }

  async getAll(table: string): Promise<Entry[]> {
    const out: Entry[] = [];
    for await (const entry of this.iterate(table)) out.push(entry);
    return out;
  }

  /**
   * A table of up to {@link ATOMIC_READ_LIMIT} keys in one atomic read; a larger one in pages
   * (each key once: keys already yielded are skipped when a page repeats them).
   */
  async *iterate(table: string): AsyncGenerator<Entry> {
    const hash = this.#live(table);
    const whole = await this.#read(this.engine.client.protokvGetAllUpToBuffer(hash, ATOMIC_READ_LIMIT));
    if (whole !== null) {
      yield* pairsToEntries(whole);
      return;
    }
    const seen = new Set<string>();
    let position: ScanPosition | undefined = START;
    while (position !== undefined) {
      const page: { items: Entry[]; next: ScanPosition | undefined } = await scanPage(
        position,
        READ_PAGE,
        (cursor, hint) => this.#hscan(hash, cursor, hint),
        entryKey,
      );
      for (const entry of page.items) {
        if (seen.has(entry.key)) continue;
        seen.add(entry.key);
        yield entry;
      }
      position = page.next;
    }
  }

  len(table: string): Promise<number> {
    return this.#read(this.engine.client.hlen(this.#live(table)));
  }

  async scan(table: string, cursor: string, count: number): Promise<Page<Entry>> {
    const hash = this.#live(table);
    const { position } = decodeCursor(cursor, false);
    if (cursor === '') {
      // A table that fits in the page comes whole, in one atomic read.
      const whole = await this.#read(this.engine.client.protokvGetAllUpToBuffer(hash, count));
      if (whole !== null) return { items: pairsToEntries(whole), cursor: '' };
    }
    const page = await scanPage(position, count, (c, hint) => this.#hscan(hash, c, hint), entryKey);
    return { items: page.items, cursor: encodeCursor(page.next) };
  }

  /**
   * The tables of every master in turn (masters in slot order); the cursor names the master by
   * the first slot it serves. A listing that spans a failover or a resharding may miss tables
   * that moved.
   */
  async tables(cursor: string, count: number): Promise<Page<TableInfo>> {
    this.#live('');
    const { lead, position: start } = decodeCursor(cursor, true);
    const masters = this.engine.masters();
    let index = masters.findIndex((m) => m.firstSlot >= lead);
    let position: ScanPosition = masters[index]?.firstSlot === lead ? start : START;
    const names: string[] = [];
    while (index >= 0 && index < masters.length && names.length < count) {
      const { node } = masters[index];
      const page = await scanPage(
        position,
        count - names.length,
        (c, hint) => this.#scanTables(node, c, hint),
        (name) => name,
      );
      names.push(...page.items);
      if (page.next !== undefined) {
        position = page.next;
        break;
      }
      index++;
      position = START;
    }
    const lengths = await Promise.all(names.map((name) => this.len(name)));
    const items = names.map((name, i) => ({ name, keys: lengths[i] })).filter((t) => t.keys > 0);
    const done = index < 0 || index >= masters.length;
    return { items, cursor: done ? '' : encodeCursor(position, masters[index].firstSlot) };
  }

  drop(table: string): Promise<number> {
    const hash = this.#live(table);
    return this.#write((c) => c.protokvDrop(hash));
  }

  healthy(): boolean {
    return !this.#closed && this.engine.healthy();
  }

  /** Waits for requests in flight, then closes the connections. Later calls fail. */
  close(): Promise<void> {
    this.#closed = true;
    this.#closing ??= this.engine.close();
    return this.#closing;
  }

  /** The hash of `table`, once the store is known to be open and connected. */
  #live(table: string): string {
    if (this.#closed) throw errors.storage('the store is closed');
    this.engine.assertConnected();
    return this.layout.tableKey(table);
  }

  #read<T>(request: Promise<T>): Promise<T> {
    return this.engine.guard(request);
  }

  /** Runs a write, followed by `WAIT` when replicas must acknowledge it. */
  #write<T>(command: (client: typeof this.engine.client) => Promise<T>): Promise<T> {
    const { client, target } = this.engine;
    if (target.waitReplicas === 0) return this.engine.guard(command(client));
    return this.engine.guard(this.#writeAndWait(command));
  }

  async #writeAndWait<T>(command: (client: typeof this.engine.client) => Promise<T>): Promise<T> {
    const { client, target } = this.engine;
    const pipeline = client.pipeline();
    const waitMs = Math.max(1, Math.floor(target.timeoutMs / 2));
    // The pipeline carries the script commands too; only its typing does not know them.
    void command(pipeline as unknown as typeof client);
    pipeline.wait(target.waitReplicas, waitMs);
    const results = (await pipeline.exec()) ?? [];
    const [written, waited] = results;
    if (written === undefined || waited === undefined) throw errors.storeUnavailable('unreachable: the write was not answered');
    if (written[0] !== null) throw written[0];
    if (waited[0] !== null) throw waited[0];
    const replicas = Number(waited[1]);
    if (replicas < target.waitReplicas) {
      throw errors.storeUnavailable(
        `did not confirm the write: ${replicas} of ${target.waitReplicas} replicas acknowledged it within ${waitMs} ms (it may still be applied)`,
      );
    }
    return written[1] as T;
  }

  async #hscan(hash: string, cursor: string, hint: number): Promise<ScanBatch<Entry>> {
    const [next, flat] = await this.#read(this.engine.client.hscanBuffer(hash, cursor, 'COUNT', hint));
    return { next: next.toString(), items: pairsToEntries(flat) };
  }

  async #scanTables(node: RedisMaster['node'], cursor: string, hint: number): Promise<ScanBatch<string>> {
    const [next, keys] = await this.#read(node.scan(cursor, 'MATCH', this.layout.tablePattern, 'COUNT', hint, 'TYPE', 'hash'));
    const names: string[] = [];
    for (const key of keys) {
      const name = this.layout.tableOf(key);
      if (name !== undefined) names.push(name);
    }
    return { next, items: names };
  }
}

function entryKey(entry: Entry): string {
  return entry.key;
}

function encode(value: Value): Buffer {
  const bytes = Value.encode(value).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function decode(bytes: Buffer): Value {
  try {
    return decodeValue(bytes);
  } catch (err) {
    throw errors.storage(`a stored value is corrupt: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function decodeOptional(bytes: Buffer | null): Value | undefined {
  return bytes === null ? undefined : decode(bytes);
}

function decodeList(list: (Buffer | null)[]): (Value | undefined)[] {
  return list.map(decodeOptional);
}

/** HGETALL / HSCAN replies (field, value, field, value, …) as entries. */
function pairsToEntries(flat: Buffer[]): Entry[] {
  const out = new Array<Entry>(flat.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = { key: flat[2 * i].toString('utf8'), value: decode(flat[2 * i + 1]) };
  return out;
}
