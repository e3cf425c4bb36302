/**
 * Hash commands. A Redis key is a protokv table and a hash field a protokv key.
 *
 * Commands with a protobuf counterpart run through the service (HSET/HMSET as HMSET, HGET,
 * HMGET, HGETALL/HKEYS/HVALS as HGETALL, HDEL as HMDEL, HEXISTS as HEXIST, HLEN, HSCAN); the
 * others use the store directly. Read-modify-write commands (HSETNX, HINCRBY, HINCRBYFLOAT) read
 * and write without yielding in between on stores that answer synchronously (memory, LMDB, whose
 * pending writes are visible to reads), which makes them atomic there.
 */
import type { CommandResponse, Kvpair, Value } from '../../protocol/generated/abi.js';
import { command as request } from '../../protocol/requests.js';
import { isPromise, type Entry, type MaybePromise } from '../../storage/store.js';
import { arg, command, reply, ReplyError, replyErrors, type Call, type CommandSpec } from '../command.js';
import { Glob } from '../glob.js';
import { decodeName, encodeName } from '../names.js';
import type { ReplyWriter } from '../reply.js';
import { argValue, formatFloat, INT64_MAX, INT64_MIN, parseFloatText, parseIntegerText, renderedLength, renderValue } from '../values.js';
import { all, checkKeyCount, collect, integerArg, nameArg, ReplyBudget, then, viaService } from './shared.js';

const isEmpty = (v: Value | undefined): boolean => v === undefined || v.value === undefined;

function hsetPairs(call: Call): Kvpair[] {
  const a = call.args;
  const pairs: Kvpair[] = new Array<Kvpair>((a.count - 2) / 2);
  for (let i = 2, j = 0; i < a.count; i += 2, j++) {
    pairs[j] = { key: decodeName(a.bufs[i], a.starts[i], a.ends[i]), value: argValue(a.bufs[i + 1], a.starts[i + 1], a.ends[i + 1]) };
  }
  return pairs;
}

function hset(call: Call): ReturnType<NonNullable<CommandSpec['run']>> {
  if (call.args.count % 2 === 1) throw replyErrors.arity(call.command.name);
  checkKeyCount(call, (call.args.count - 2) / 2);
  const table = nameArg(call, 1);
  const isHset = call.command.name === 'hset';
  return viaService(call, request('hmset', { table, pairs: hsetPairs(call) }), (out, res) => {
    if (!isHset) {
      out.ok();
      return;
    }
    // A field is added when it had no previous value.
    let added = 0;
    for (const v of res.values) if (isEmpty(v)) added++;
    out.integer(added);
  });
}

function hget(call: Call) {
  return viaService(
    call,
    request('hget', { table: nameArg(call, 1), key: nameArg(call, 2) }),
    (out, res) => out.bulkValue(res.values[0]),
    (out) => out.null(),
  );
}

function hmget(call: Call) {
  const a = call.args;
  checkKeyCount(call, a.count - 2);
  const table = nameArg(call, 1);
  const keys = new Array<string>(a.count - 2);
  for (let i = 2; i < a.count; i++) keys[i - 2] = decodeName(a.bufs[i], a.starts[i], a.ends[i]);
  const store = call.server.service.store;
  const response = call.server.service.execute(request('hmget', { table, keys }), call.client.context);
  // HMGET answers the empty value both for a missing field and for a field holding the empty
  // value; over RESP the first is nil and the second an empty string, so empty answers are checked.
  const result = then(response, (res) => {
    if (res.status !== 200) return { res, present: undefined };
    const checks = res.values.map((v, i) => (isEmpty(v) ? store.contains(table, keys[i]) : true));
    return then(all(checks), (present) => ({ res, present }));
  });
  return reply(call, result, (out, { res, present }) => {
    if (present === undefined) {
      out.error(`ERR ${res.message}`);
      return;
    }
    out.array(res.values.length);
    for (let i = 0; i < res.values.length; i++) {
      if (present[i]) out.bulkValue(res.values[i]);
      else out.null();
    }
  });
}

/** Writes the pairs of an HGETALL response: `fields`, `values` or both (a map). */
function writePairs(call: Call, out: ReplyWriter, res: CommandResponse, what: 'both' | 'fields' | 'values'): void {
  const pairs = res.pairs;
  const budget = new ReplyBudget(out, call.server.limits.maxBulkLength);
  if (what === 'both') out.map(pairs.length);
  else out.array(pairs.length);
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i];
    if (what !== 'values') out.bulkName(p.key);
    if (what !== 'fields') out.bulkValue(p.value);
    if ((i & 63) === 63 && !budget.check()) return;
  }
  budget.check();
}

const hgetallLike = (what: 'both' | 'fields' | 'values') => (call: Call) =>
  viaService(call, request('hgetall', { table: nameArg(call, 1) }), (out, res) => writePairs(call, out, res, what));

function hlen(call: Call) {
  return viaService(call, request('hlen', { table: nameArg(call, 1) }), (out, res) => out.integer(integerOf(res.values[0])));
}

function integerOf(v: Value | undefined): bigint {
  return v?.value?.$case === 'integer' ? v.value.value : 0n;
}

function hstrlen(call: Call) {
  return reply(call, call.server.service.store.get(nameArg(call, 1), nameArg(call, 2)), (out, v) => out.integer(v === undefined ? 0 : renderedLength(v)));
}

function hexists(call: Call) {
  return viaService(call, request('hexist', { table: nameArg(call, 1), key: nameArg(call, 2) }), (out, res) => {
    const v = res.values[0]?.value;
    out.integer(v?.$case === 'bool' && v.value ? 1 : 0);
  });
}

function hdel(call: Call) {
  const a = call.args;
  checkKeyCount(call, a.count - 2);
  const keys = new Array<string>(a.count - 2);
  for (let i = 2; i < a.count; i++) keys[i - 2] = decodeName(a.bufs[i], a.starts[i], a.ends[i]);
  return viaService(call, request('hmdel', { table: nameArg(call, 1), keys }), (out, res) => {
    let removed = 0;
    for (const v of res.values) if (!isEmpty(v)) removed++;
    out.integer(removed);
  });
}

/**
 * Reads field `key` of `table`, computes what to write (or nothing) and writes it, with nothing
 * else of the store's in between when the store answers reads synchronously. When the read is
 * asynchronous (the Redis store) the client is held until the write has been issued, so its later
 * commands see it. Resolves to what `compute` returned as `reply`.
 */
function readModifyWrite<R>(
  call: Call,
  table: string,
  key: string,
  compute: (current: Value | undefined) => { write?: Value; reply: R },
): MaybePromise<R> {
  const store = call.server.service.store;
  const read = store.get(table, key);
  const issued = then(read, (current) => {
    const { write, reply } = compute(current);
    return { written: write === undefined ? undefined : store.set(table, key, write), reply };
  });
  if (isPromise(issued)) call.client.hold(issued);
  return then(issued, ({ written, reply }) => (written === undefined ? reply : then(written, () => reply)));
}

function hsetnx(call: Call) {
  const a = call.args;
  const value = argValue(a.bufs[3], a.starts[3], a.ends[3]);
  const result = readModifyWrite(call, nameArg(call, 1), nameArg(call, 2), (current) =>
    current === undefined ? { write: value, reply: 1 } : { reply: 0 },
  );
  return reply(call, result, (out, n) => out.integer(n));
}

/** A stored value as the text Redis would hold, for parsing it as a number; `undefined` when it cannot be one. */
function numericText(v: Value): string | undefined {
  const r = renderValue(v);
  if (typeof r === 'string') return r;
  for (const b of r) if (b >= 0x80) return undefined;
  return r.toString('latin1');
}

function hincrby(call: Call) {
  const increment = integerArg(call, 3);
  const result = readModifyWrite(call, nameArg(call, 1), nameArg(call, 2), (current) => {
    let value = 0n;
    if (current !== undefined) {
      const inner = current.value;
      const text = inner?.$case === 'integer' ? undefined : numericText(current);
      const parsed = inner?.$case === 'integer' ? inner.value : text === undefined ? undefined : parseIntegerText(text);
      if (parsed === undefined) throw new ReplyError('ERR hash value is not an integer');
      value = parsed;
    }
    const next = value + increment;
    if (next < INT64_MIN || next > INT64_MAX) throw new ReplyError('ERR increment or decrement would overflow');
    return { write: { value: { $case: 'integer', value: next } }, reply: next };
  });
  return reply(call, result, (out, n) => out.integer(n));
}

function hincrbyfloat(call: Call) {
  const increment = parseFloatText(call.args.latin1(3));
  if (increment === undefined) throw replyErrors.notFloat();
  if (!Number.isFinite(increment)) throw new ReplyError('ERR value is NaN or Infinity');
  const result = readModifyWrite(call, nameArg(call, 1), nameArg(call, 2), (current) => {
    let value = 0;
    if (current !== undefined) {
      const inner = current.value;
      let parsed: number | undefined;
      if (inner?.$case === 'float') parsed = inner.value;
      else if (inner?.$case === 'integer') parsed = Number(inner.value);
      else {
        const text = numericText(current);
        parsed = text === undefined ? undefined : parseFloatText(text);
      }
      if (parsed === undefined || Number.isNaN(parsed)) throw new ReplyError('ERR hash value is not a float');
      value = parsed;
    }
    const next = value + increment;
    if (!Number.isFinite(next)) throw new ReplyError('ERR increment would produce NaN or Infinity');
    return { write: { value: { $case: 'float', value: next } }, reply: next };
  });
  return reply(call, result, (out, x) => out.bulkString(formatFloat(x)));
}

const LONG_MAX = (1n << 63n) - 1n;

function hrandfield(call: Call) {
  const a = call.args;
  const store = call.server.service.store;
  const table = nameArg(call, 1);
  if (a.count >= 3) {
    const count = integerArg(call, 2);
    if (count < -LONG_MAX || count > LONG_MAX) throw new ReplyError(`ERR value is out of range, value must between ${-LONG_MAX} and ${LONG_MAX}`);
    if (a.count > 4 || (a.count === 4 && !a.is(3, 'withvalues'))) throw replyErrors.syntax();
    const withValues = a.count === 4;
    if (withValues && (count < -LONG_MAX / 2n || count > LONG_MAX / 2n)) throw replyErrors.outOfRange();
    return reply(call, then(store.len(table), (size) => randomFields(call, table, size, count, withValues)), (out, picked) => {
      writeRandomFields(call, out, picked, withValues);
    });
  }
  return reply(
    call,
    then(store.len(table), (size) => (size === 0 ? [] : pickEntries(store.iterate(table), [Math.floor(Math.random() * size)]))),
    (out, picked) => {
      if (picked.length === 0) out.null();
      else out.bulkName(picked[0].key);
    },
  );
}

/** The entries HRANDFIELD returns for `count`: distinct ones when positive, with repeats when negative. */
function randomFields(call: Call, table: string, size: number, count: bigint, withValues: boolean): MaybePromise<Entry[]> {
  if (count === 0n || size === 0) return [];
  const store = call.server.service.store;
  if (count > 0n) {
    const n = count >= BigInt(size) ? size : Number(count);
    if (n === size) return then(collect(store.iterate(table)), shuffle);
    return then(pickEntries(store.iterate(table), distinctIndexes(size, n)), shuffle);
  }
  // Every pick is independent; the reply must stay within the size limit, so refuse counts that
  // cannot fit before building anything (each element takes at least 6 bytes).
  const n = -count;
  const perElement = withValues ? 12n : 6n;
  if (n * perElement > BigInt(call.server.limits.maxBulkLength)) {
    throw new ReplyError(`ERR Response too large: ${n} elements exceed the reply limit of ${call.server.limits.maxBulkLength} bytes`);
  }
  const picks = new Array<number>(Number(n));
  for (let i = 0; i < picks.length; i++) picks[i] = Math.floor(Math.random() * size);
  return pickEntries(store.iterate(table), picks);
}

function writeRandomFields(call: Call, out: ReplyWriter, entries: Entry[], withValues: boolean): void {
  const budget = new ReplyBudget(out, call.server.limits.maxBulkLength);
  if (withValues && out.protocol === 2) out.array(entries.length * 2);
  else out.array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    if (withValues && out.protocol === 3) out.array(2);
    out.bulkName(entries[i].key);
    if (withValues) out.bulkValue(entries[i].value);
    if ((i & 63) === 63 && !budget.check()) return;
  }
  budget.check();
}

/** `n` distinct indexes in [0, size), by Floyd's algorithm. */
function distinctIndexes(size: number, n: number): number[] {
  const chosen = new Set<number>();
  for (let j = size - n; j < size; j++) {
    const t = Math.floor(Math.random() * (j + 1));
    chosen.add(chosen.has(t) ? j : t);
  }
  return Array.from(chosen);
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

type Entries = Iterable<Entry> | AsyncIterable<Entry>;

/**
 * The entries at positions `indexes` (repeats allowed) of one pass over `entries`, in the order of
 * `indexes`. Entries past the table's end (it shrank meanwhile) are left out.
 */
function pickEntries(entries: Entries, indexes: number[]): MaybePromise<Entry[]> {
  const order = indexes.map((index, at) => ({ index, at })).sort((x, y) => x.index - y.index);
  const out = new Array<Entry | undefined>(indexes.length);
  let k = 0;
  let position = 0;
  const visit = (e: Entry): boolean => {
    while (k < order.length && order[k].index === position) out[order[k++].at] = e;
    position++;
    return k < order.length;
  };
  const finish = (): Entry[] => out.filter((e): e is Entry => e !== undefined);
  if (Symbol.asyncIterator in entries) {
    return (async () => {
      for await (const e of entries) if (!visit(e)) break;
      return finish();
    })();
  }
  for (const e of entries) if (!visit(e)) break;
  return finish();
}

/** Largest page HSCAN asks the store for (protokv's HSCAN maximum). */
export const MAX_SCAN_COUNT = 10_000;

/** Parses SCAN/HSCAN options from argument `from`: MATCH, COUNT and (SCAN only) TYPE. */
export function scanOptions(call: Call, from: number, allowType: boolean): { count: number; match: Glob | undefined; type: string | undefined } {
  const a = call.args;
  let count = 10;
  let match: Glob | undefined;
  let type: string | undefined;
  for (let i = from; i < a.count; i += 2) {
    const more = a.count - i >= 2;
    if (more && a.is(i, 'count')) {
      const n = integerArg(call, i + 1);
      if (n < 1n) throw replyErrors.syntax();
      count = n > BigInt(MAX_SCAN_COUNT) ? MAX_SCAN_COUNT : Number(n);
    } else if (more && a.is(i, 'match')) {
      const glob = new Glob(a.view(i + 1));
      match = glob.matchesAll ? undefined : glob;
    } else if (more && allowType && a.is(i, 'type')) {
      type = a.latin1(i + 1);
    } else {
      throw replyErrors.syntax();
    }
  }
  return { count, match, type };
}

function hscan(call: Call) {
  const table = nameArg(call, 1);
  const server = call.server;
  const storeCursor = server.cursors.resolve(table, call.args.latin1(2));
  const { count, match } = scanOptions(call, 3, false);
  return viaService(call, request('hscan', { table, cursor: storeCursor, count }), (out, res) => {
    const next = res.values[0]?.value;
    const cursor = server.cursors.issue(table, next?.$case === 'string' ? next.value : '');
    const pairs = match === undefined ? res.pairs : res.pairs.filter((p) => match.test(encodeName(p.key)));
    out.array(2);
    out.bulkString(cursor);
    out.array(pairs.length * 2);
    for (const p of pairs) {
      out.bulkName(p.key);
      out.bulkValue(p.value);
    }
  });
}

const key = arg.key();
const field = arg.string('field');
const hashKeys = { firstKey: 1, lastKey: 1, keyStep: 1 };

export const hashCommands: CommandSpec[] = [
  command({
    name: 'hset', arity: -4, run: hset, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['write', 'denyoom', 'fast'], aclCategories: ['@write', '@hash', '@fast'],
    summary: 'Set the string value of a hash field',
    complexity: 'O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.',
    args: [key, arg.block('data', [field, arg.string('value')], { multiple: true })],
  }),
  command({
    name: 'hmset', arity: -4, run: hset, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['write', 'denyoom', 'fast'], aclCategories: ['@write', '@hash', '@fast'],
    summary: 'Set multiple hash fields to multiple values', complexity: 'O(N) where N is the number of fields being set.',
    args: [key, arg.block('data', [field, arg.string('value')], { multiple: true })],
  }),
  command({
    name: 'hget', arity: 3, run: hget, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly', 'fast'], aclCategories: ['@read', '@hash', '@fast'],
    summary: 'Get the value of a hash field', args: [key, field],
  }),
  command({
    name: 'hmget', arity: -3, run: hmget, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly', 'fast'], aclCategories: ['@read', '@hash', '@fast'],
    summary: 'Get the values of all the given hash fields', complexity: 'O(N) where N is the number of fields being requested.',
    args: [key, arg.string('field', { multiple: true })],
  }),
  command({
    name: 'hgetall', arity: 2, run: hgetallLike('both'), group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly'], aclCategories: ['@read', '@hash', '@slow'],
    summary: 'Get all the fields and values in a hash', complexity: 'O(N) where N is the size of the hash.', args: [key],
  }),
  command({
    name: 'hkeys', arity: 2, run: hgetallLike('fields'), group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly'], aclCategories: ['@read', '@hash', '@slow'],
    summary: 'Get all the fields in a hash', complexity: 'O(N) where N is the size of the hash.', args: [key],
  }),
  command({
    name: 'hvals', arity: 2, run: hgetallLike('values'), group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly'], aclCategories: ['@read', '@hash', '@slow'],
    summary: 'Get all the values in a hash', complexity: 'O(N) where N is the size of the hash.', args: [key],
  }),
  command({
    name: 'hlen', arity: 2, run: hlen, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly', 'fast'], aclCategories: ['@read', '@hash', '@fast'],
    summary: 'Get the number of fields in a hash', args: [key],
  }),
  command({
    name: 'hstrlen', arity: 3, run: hstrlen, group: 'hash', since: '3.2.0', ...hashKeys,
    flags: ['readonly', 'fast'], aclCategories: ['@read', '@hash', '@fast'],
    summary: 'Get the length of the value of a hash field', args: [key, field],
  }),
  command({
    name: 'hexists', arity: 3, run: hexists, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['readonly', 'fast'], aclCategories: ['@read', '@hash', '@fast'],
    summary: 'Determine if a hash field exists', args: [key, field],
  }),
  command({
    name: 'hsetnx', arity: 4, run: hsetnx, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['write', 'denyoom', 'fast'], aclCategories: ['@write', '@hash', '@fast'],
    summary: 'Set the value of a hash field, only if the field does not exist', args: [key, field, arg.string('value')],
  }),
  command({
    name: 'hdel', arity: -3, run: hdel, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['write', 'fast'], aclCategories: ['@write', '@hash', '@fast'],
    summary: 'Delete one or more hash fields', complexity: 'O(N) where N is the number of fields to be removed.',
    args: [key, arg.string('field', { multiple: true })],
  }),
  command({
    name: 'hincrby', arity: 4, run: hincrby, group: 'hash', since: '2.0.0', ...hashKeys,
    flags: ['write', 'denyoom', 'fast'], aclCategories: ['@write', '@hash', '@fast'],
    summary: 'Increment the integer value of a hash field by the given number', args: [key, field, arg.integer('increment')],
  }),
  command({
    name: 'hincrbyfloat', arity: 4, run: hincrbyfloat, group: 'hash', since: '2.6.0', ...hashKeys,
    flags: ['write', 'denyoom', 'fast'], aclCategories: ['@write', '@hash', '@fast'],
    summary: 'Increment the float value of a hash field by the given amount', args: [key, field, arg.double('increment')],
  }),
  command({
    name: 'hrandfield', arity: -2, run: hrandfield, group: 'hash', since: '6.2.0', ...hashKeys,
    flags: ['readonly'], aclCategories: ['@read', '@hash', '@slow'],
    summary: 'Get one or multiple random fields from a hash', complexity: 'O(N) where N is the number of fields returned',
    args: [key, arg.block('options', [arg.integer('count'), arg.token('WITHVALUES', { optional: true })], { optional: true })],
  }),
  command({
    name: 'hscan', arity: -3, run: hscan, group: 'hash', since: '2.8.0', ...hashKeys,
    flags: ['readonly'], aclCategories: ['@read', '@hash', '@slow'],
    summary: 'Incrementally iterate hash fields and associated values',
    complexity: 'O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..',
    args: [key, arg.integer('cursor'), arg.pattern('pattern', { token: 'MATCH', optional: true }), arg.integer('count', { token: 'COUNT', optional: true })],
  }),
];
