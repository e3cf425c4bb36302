/**
 * Builders for every request and response shape, so callers never spell out the oneof by hand.
 */
import type { CommandRequest, CommandResponse, Kvpair, Value } from './generated/abi.js';
import { toPair, toValue, type KvValue } from './values.js';

/** The command names, as the `request_data` oneof spells them. */
export type CommandName = NonNullable<CommandRequest['requestData']>['$case'];

/** The sub-message of command `C`. */
export type CommandArgs<C extends CommandName> = Extract<NonNullable<CommandRequest['requestData']>, { $case: C }>['value'];

/** Wraps a sub-message into a `CommandRequest`. */
export function command<C extends CommandName>(name: C, value: CommandArgs<C>): CommandRequest {
  return { requestData: { $case: name, value } as CommandRequest['requestData'] };
}

/** One builder per command, taking plain JavaScript values. */
export const requests = {
  hget: (table: string, key: string) => command('hget', { table, key }),
  hgetall: (table: string) => command('hgetall', { table }),
  hmget: (table: string, keys: string[]) => command('hmget', { table, keys }),
  hset: (table: string, key: string, value: KvValue) => command('hset', { table, pair: toPair(key, value) }),
  hmset: (table: string, pairs: Iterable<readonly [string, KvValue]> | Record<string, KvValue>) =>
    command('hmset', { table, pairs: toPairs(pairs) }),
  hdel: (table: string, key: string) => command('hdel', { table, key }),
  hmdel: (table: string, keys: string[]) => command('hmdel', { table, keys }),
  hexist: (table: string, key: string) => command('hexist', { table, key }),
  hmexist: (table: string, keys: string[]) => command('hmexist', { table, keys }),
  subscribe: (topic: string) => command('subscribe', { topic }),
  unsubscribe: (topic: string, id: number) => command('unsubscribe', { topic, id }),
  publish: (topic: string, ...data: KvValue[]) => command('publish', { topic, data: data.map(toValue) }),
  hlen: (table: string) => command('hlen', { table }),
  /** One page of `table`; `count` 0 (the default) means the server's default page size. */
  hscan: (table: string, cursor = '', count = 0) => command('hscan', { table, cursor, count }),
  /** One page of the table names; `count` 0 (the default) means the server's default page size. */
  tables: (cursor = '', count = 0) => command('tables', { cursor, count }),
  hdrop: (table: string) => command('hdrop', { table }),
} satisfies { [C in CommandName]: (...args: never[]) => CommandRequest };

function toPairs(pairs: Iterable<readonly [string, KvValue]> | Record<string, KvValue>): Kvpair[] {
  const entries = Symbol.iterator in pairs ? pairs : Object.entries(pairs);
  return Array.from(entries, ([k, v]) => toPair(k, v));
}

const NO_VALUES: Value[] = [];
const NO_PAIRS: Kvpair[] = [];

/** A 200 response carrying `values`. */
export function okValues(values: Value[]): CommandResponse {
  return { status: 200, message: '', values, pairs: NO_PAIRS };
}

/** A 200 response carrying `pairs`. */
export function okPairs(pairs: Kvpair[]): CommandResponse {
  return { status: 200, message: '', values: NO_VALUES, pairs };
}

/** A 200 response of a paging command: the next cursor in `values`, the page in `pairs`. */
export function okPage(cursor: Value, pairs: Kvpair[]): CommandResponse {
  return { status: 200, message: '', values: [cursor], pairs };
}

/** A 200 response with nothing in it. */
export function ok(): CommandResponse {
  return { status: 200, message: '', values: NO_VALUES, pairs: NO_PAIRS };
}
