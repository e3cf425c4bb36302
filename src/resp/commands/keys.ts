/**
 * Keyspace commands. The keyspace is protokv's list of tables: every non-empty table is a key of
 * type `hash`; no other type exists.
 *
 * DEL runs through the service as HDROP and SCAN as TABLES; the rest use the store. DBSIZE,
 * KEYS and FLUSHDB walk the table list a page at a time, so they cost O(number of tables).
 */
import { command as request } from '../../protocol/requests.js';
import { isPromise, type MaybePromise, type Store, type TableInfo } from '../../storage/store.js';
import { arg, command, reply, replyErrors, type Call, type CommandSpec } from '../command.js';
import { Glob } from '../glob.js';
import { encodeName } from '../names.js';
import { renderedLength } from '../values.js';
import { scanOptions } from './hash.js';
import { all, collect, container, nameArg, then, viaService } from './shared.js';

/** Tables listed per store call when walking the whole keyspace. */
const PAGE = 1000;

/** Calls `onPage` for each page of the table list until it returns false or the list ends. */
export function eachTablePage(store: Store, onPage: (tables: TableInfo[]) => MaybePromise<boolean>): MaybePromise<void> {
  let cursor = '';
  const handle = (items: TableInfo[], next: string): MaybePromise<boolean> =>
    then(onPage(items), (go) => {
      cursor = next;
      return go && next !== '';
    });
  const step = (): MaybePromise<void> => {
    for (;;) {
      const page = store.tables(cursor, PAGE);
      if (isPromise(page)) return page.then((p) => then(handle(p.items, p.cursor), (go) => (go ? step() : undefined)));
      const go = handle(page.items, page.cursor);
      if (isPromise(go)) return go.then((more) => (more ? step() : undefined));
      if (!go) return;
    }
  };
  return step();
}

function del(call: Call) {
  const a = call.args;
  const results = [];
  for (let i = 1; i < a.count; i++) {
    const r = call.server.service.execute(request('hdrop', { table: nameArg(call, i) }), call.client.context);
    results.push(r);
  }
  return reply(call, all(results), (out, responses) => {
    let deleted = 0;
    for (const res of responses) {
      if (res.status !== 200) {
        out.error(`ERR ${res.message}`);
        return;
      }
      const v = res.values[0]?.value;
      if (v?.$case === 'integer' && v.value > 0n) deleted++;
    }
    out.integer(deleted);
  });
}

function exists(call: Call) {
  const store = call.server.service.store;
  const lens = [];
  for (let i = 1; i < call.args.count; i++) lens.push(store.len(nameArg(call, i)));
  return reply(call, all(lens), (out, ns) => out.integer(ns.filter((n) => n > 0).length));
}

function type(call: Call) {
  return reply(call, call.server.service.store.len(nameArg(call, 1)), (out, n) => out.simple(n > 0 ? 'hash' : 'none'));
}

function keys(call: Call) {
  const glob = new Glob(call.args.view(1));
  const names: string[] = [];
  let bytes = 0;
  const limit = call.server.limits.maxBulkLength;
  const walked = eachTablePage(call.server.service.store, (tables) => {
    for (const t of tables) {
      const name = encodeName(t.name);
      if (!glob.test(name)) continue;
      names.push(t.name);
      bytes += name.length + 16;
      if (bytes > limit) return false;
    }
    return true;
  });
  return reply(call, walked, (out) => {
    if (bytes > limit) {
      out.error(`ERR Response too large: more than ${limit} bytes (use SCAN to read the keyspace in pages)`);
      return;
    }
    out.array(names.length);
    for (const n of names) out.bulkName(n);
  });
}

function scan(call: Call) {
  const server = call.server;
  const storeCursor = server.cursors.resolve(undefined, call.args.latin1(1));
  const { count, match, type: wanted } = scanOptions(call, 2, true);
  if (wanted !== undefined && wanted.toLowerCase() !== 'hash') {
    // Only hashes exist: no key can match.
    call.out.array(2);
    call.out.bulkString('0');
    call.out.array(0);
    return;
  }
  return viaService(call, request('tables', { cursor: storeCursor, count }), (out, res) => {
    const next = res.values[0]?.value;
    const cursor = server.cursors.issue(undefined, next?.$case === 'string' ? next.value : '');
    const names = res.pairs.map((p) => p.key).filter((name) => match === undefined || match.test(encodeName(name)));
    out.array(2);
    out.bulkString(cursor);
    out.array(names.length);
    for (const n of names) out.bulkName(n);
  });
}

function dbsize(call: Call) {
  let n = 0;
  const walked = eachTablePage(call.server.service.store, (tables) => {
    n += tables.length;
    return true;
  });
  return reply(call, walked, (out) => out.integer(n));
}

function flush(call: Call) {
  const a = call.args;
  if (a.count > 2 || (a.count === 2 && !a.is(1, 'async') && !a.is(1, 'sync'))) throw replyErrors.syntax();
  const store = call.server.service.store;
  const walked = eachTablePage(store, (tables) => then(all(tables.map((t) => store.drop(t.name))), () => true));
  return reply(call, walked, (out) => out.ok());
}

/** Which encoding Redis would give a hash of this shape under the configured listpack limits. */
function objectEncoding(call: Call) {
  const table = nameArg(call, 2);
  const store = call.server.service.store;
  const maxEntries = Number(call.server.config.value('hash-max-listpack-entries'));
  const maxValue = Number(call.server.config.value('hash-max-listpack-value'));
  const encoding = then(store.len(table), (size): MaybePromise<string | undefined> => {
    if (size === 0) return undefined;
    if (size > maxEntries) return 'hashtable';
    return then(collect(store.iterate(table)), (entries) =>
      entries.every((e) => encodeName(e.key).length <= maxValue && renderedLength(e.value) <= maxValue) ? 'listpack' : 'hashtable',
    );
  });
  return reply(call, encoding, (out, enc) => (enc === undefined ? out.null() : out.bulkString(enc)));
}

function objectRefcount(call: Call) {
  return reply(call, call.server.service.store.len(nameArg(call, 2)), (out, n) => (n === 0 ? out.null() : out.integer(1)));
}

/**
 * An estimate of the bytes a table takes: its keys and rendered values plus a fixed overhead per
 * entry and per table (what the memory store spends on a map entry, roughly).
 */
function memoryUsage(call: Call) {
  const a = call.args;
  for (let i = 3; i < a.count; i += 2) {
    if (a.count - i >= 2 && a.is(i, 'samples')) {
      const n = Number(a.latin1(i + 1));
      if (!/^-?\d+$/.test(a.latin1(i + 1)) || !Number.isSafeInteger(n)) throw replyErrors.notInteger();
    } else {
      throw replyErrors.syntax();
    }
  }
  const table = nameArg(call, 2);
  const store = call.server.service.store;
  const usage = then(store.len(table), (size): MaybePromise<number | undefined> => {
    if (size === 0) return undefined;
    return then(collect(store.iterate(table)), (entries) => {
      let bytes = 96 + encodeName(table).length;
      for (const e of entries) bytes += 64 + encodeName(e.key).length + renderedLength(e.value);
      return bytes;
    });
  });
  return reply(call, usage, (out, n) => (n === undefined ? out.null() : out.integer(n)));
}

const keyAt1 = { firstKey: 1, lastKey: 1, keyStep: 1 };
const allKeys = { firstKey: 1, lastKey: -1, keyStep: 1 };

export const keyCommands: CommandSpec[] = [
  command({
    name: 'del', arity: -2, run: del, group: 'generic', since: '1.0.0', ...allKeys,
    flags: ['write'], aclCategories: ['@keyspace', '@write', '@slow'],
    summary: 'Delete a key', complexity: 'O(N) where N is the number of keys that will be removed.',
    args: [arg.key('key', { multiple: true })],
  }),
  command({
    name: 'unlink', arity: -2, run: del, group: 'generic', since: '4.0.0', ...allKeys,
    flags: ['write', 'fast'], aclCategories: ['@keyspace', '@write', '@fast'],
    summary: 'Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.',
    complexity: 'O(1) for each key removed regardless of its size.', args: [arg.key('key', { multiple: true })],
  }),
  command({
    name: 'exists', arity: -2, run: exists, group: 'generic', since: '1.0.0', ...allKeys,
    flags: ['readonly', 'fast'], aclCategories: ['@keyspace', '@read', '@fast'],
    summary: 'Determine if a key exists', complexity: 'O(N) where N is the number of keys to check.',
    args: [arg.key('key', { multiple: true })],
  }),
  command({
    name: 'type', arity: 2, run: type, group: 'generic', since: '1.0.0', ...keyAt1,
    flags: ['readonly', 'fast'], aclCategories: ['@keyspace', '@read', '@fast'],
    summary: 'Determine the type stored at key', args: [arg.key()],
  }),
  command({
    name: 'keys', arity: 2, run: keys, group: 'generic', since: '1.0.0',
    flags: ['readonly'], aclCategories: ['@keyspace', '@read', '@slow', '@dangerous'],
    summary: 'Find all keys matching the given pattern',
    complexity: 'O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.',
    args: [arg.pattern('pattern')],
  }),
  command({
    name: 'scan', arity: -2, run: scan, group: 'generic', since: '2.8.0',
    flags: ['readonly'], aclCategories: ['@keyspace', '@read', '@slow'],
    summary: 'Incrementally iterate the keys space',
    complexity: 'O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.',
    args: [
      arg.integer('cursor'),
      arg.pattern('pattern', { token: 'MATCH', optional: true }),
      arg.integer('count', { token: 'COUNT', optional: true }),
      arg.string('type', { token: 'TYPE', optional: true }),
    ],
  }),
  command({
    name: 'dbsize', arity: 1, run: dbsize, group: 'server', since: '1.0.0',
    flags: ['readonly', 'fast'], aclCategories: ['@keyspace', '@read', '@fast'],
    summary: 'Return the number of keys in the selected database',
  }),
  command({
    name: 'flushdb', arity: -1, run: flush, group: 'server', since: '1.0.0',
    flags: ['write'], aclCategories: ['@keyspace', '@write', '@slow', '@dangerous'],
    summary: 'Remove all keys from the current database', complexity: 'O(N) where N is the number of keys in the selected database',
    args: [arg.oneof('flush-type', [arg.token('ASYNC'), arg.token('SYNC')], { optional: true })],
  }),
  command({
    name: 'flushall', arity: -1, run: flush, group: 'server', since: '1.0.0',
    flags: ['write'], aclCategories: ['@keyspace', '@write', '@slow', '@dangerous'],
    summary: 'Remove all keys from all databases', complexity: 'O(N) where N is the total number of keys in all databases',
    args: [arg.oneof('flush-type', [arg.token('ASYNC'), arg.token('SYNC')], { optional: true })],
  }),
  container('object', 'A container for object introspection commands', 'generic', '2.2.3', [
    command({
      name: 'object|encoding', arity: 3, run: objectEncoding, group: 'generic', since: '2.2.3', firstKey: 2, lastKey: 2, keyStep: 1,
      flags: ['readonly'], aclCategories: ['@keyspace', '@read', '@slow'],
      summary: 'Inspect the internal encoding of a Redis object', args: [arg.key()],
    }),
    command({
      name: 'object|refcount', arity: 3, run: objectRefcount, group: 'generic', since: '2.2.3', firstKey: 2, lastKey: 2, keyStep: 1,
      flags: ['readonly'], aclCategories: ['@keyspace', '@read', '@slow'],
      summary: 'Get the number of references to the value of the key', args: [arg.key()],
    }),
  ], [
    'ENCODING <key>',
    '    Return the kind of internal representation used in order to store the value',
    '    associated with a <key>.',
    'REFCOUNT <key>',
    '    Return the number of references of the value associated with the specified',
    '    <key>.',
  ]),
  container('memory', 'A container for memory diagnostics commands', 'server', '4.0.0', [
    command({
      name: 'memory|usage', arity: -3, run: memoryUsage, group: 'server', since: '4.0.0', firstKey: 2, lastKey: 2, keyStep: 1,
      flags: ['readonly'], aclCategories: ['@read', '@slow'],
      summary: 'Estimate the memory usage of a key', complexity: 'O(N) where N is the number of samples.',
      args: [arg.key(), arg.integer('count', { token: 'SAMPLES', optional: true })],
    }),
  ], [
    'USAGE <key> [SAMPLES <count>]',
    '    Return memory in bytes used by <key> and its value. Nested values are',
    '    sampled up to <count> times (default: 5, 0 means sample all).',
  ]),
];
