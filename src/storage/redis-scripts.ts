/**
 * The Lua scripts behind every read-modify-write of the Redis store and broker. A script runs
 * atomically on the node that owns its keys, so "the previous value" is exact however many
 * protokv nodes write the same key, and a multi-key write is seen whole or not at all.
 *
 * ioredis sends each script with EVALSHA, loading it (EVAL) the first time it is used on a
 * connection and again after a NOSCRIPT reply (a node restarted, a replica promoted, SCRIPT FLUSH).
 *
 * Scripts that write start with a `#!lua` line: Redis then refuses the whole script up front when
 * it is out of memory, instead of failing it half-way through a multi-key write. Scripts name every
 * key they touch in KEYS (Redis Cluster routes on them).
 */

/** A script's source and the number of its KEYS. */
export interface ScriptSpec {
  readonly lua: string;
  readonly numberOfKeys: number;
}

/** KEYS: table hash. ARGV: key, encoded value. Returns the previous value (nil when new). */
const set: ScriptSpec = {
  numberOfKeys: 1,
  lua: `#!lua
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return previous`,
};

/**
 * KEYS: table hash. ARGV: key, value, key, value, … Returns the previous value of each pair in
 * order (nil when new); a key named twice sees its first new value as its second previous one.
 */
const setMany: ScriptSpec = {
  numberOfKeys: 1,
  lua: `#!lua
local out = {}
for i = 1, #ARGV, 2 do
  out[(i + 1) / 2] = redis.call('HGET', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return out`,
};

/** KEYS: table hash. ARGV: key. Returns the removed value (nil when absent). */
const del: ScriptSpec = {
  numberOfKeys: 1,
  lua: `#!lua
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then redis.call('HDEL', KEYS[1], ARGV[1]) end
return previous`,
};

/** KEYS: table hash. ARGV: keys. Returns the removed value of each key in order (nil when absent). */
const delMany: ScriptSpec = {
  numberOfKeys: 1,
  lua: `#!lua
local out = {}
for i = 1, #ARGV do
  local previous = redis.call('HGET', KEYS[1], ARGV[i])
  if previous then redis.call('HDEL', KEYS[1], ARGV[i]) end
  out[i] = previous
end
return out`,
};

/** KEYS: table hash. Removes the table; returns how many keys it had. */
const drop: ScriptSpec = {
  numberOfKeys: 1,
  lua: `#!lua
local n = redis.call('HLEN', KEYS[1])
if n > 0 then redis.call('UNLINK', KEYS[1]) end
return n`,
};

/**
 * KEYS: table hash. ARGV: most keys. Every field and value of the table, as HGETALL, when it has
 * at most that many keys; nil when it has more (the caller then pages through it with HSCAN, so
 * a huge table never blocks the node for long).
 */
const getAllUpTo: ScriptSpec = {
  numberOfKeys: 1,
  lua: `#!lua flags=no-writes
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return redis.call('HGETALL', KEYS[1])`,
};

/**
 * KEYS: topic channel, topic subscriptions hash. ARGV: message. Publishes; returns the number of
 * live subscriptions of the topic on every node.
 */
const publish: ScriptSpec = {
  numberOfKeys: 2,
  lua: `#!lua
redis.call('SPUBLISH', KEYS[1], ARGV[1])
return redis.call('HLEN', KEYS[2])`,
};

/**
 * KEYS: topic channel, topic subscriptions hash. ARGV: subscription id, control message. Ends a
 * subscription wherever it lives: removes it from the hash and tells its node, through the topic's
 * own channel (so it is ordered with the topic's messages). Returns 1, or 0 when there is no such
 * subscription.
 */
const unsubscribe: ScriptSpec = {
  numberOfKeys: 2,
  lua: `#!lua
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('SPUBLISH', KEYS[1], ARGV[2])
return 1`,
};

/** Every script, by the name ioredis gives its command (`name` and `nameBuffer`). */
export const SCRIPTS = {
  protokvSet: set,
  protokvSetMany: setMany,
  protokvDel: del,
  protokvDelMany: delMany,
  protokvDrop: drop,
  protokvGetAllUpTo: getAllUpTo,
  protokvPublish: publish,
  protokvUnsubscribe: unsubscribe,
} as const satisfies Record<string, ScriptSpec>;

type Arg = string | Buffer | number;

/** The script commands ioredis adds to a client (and its pipelines) once they are defined. */
export interface ScriptCommands {
  protokvSetBuffer(table: string, key: string, value: Buffer): Promise<Buffer | null>;
  protokvSetManyBuffer(table: string, ...pairs: Arg[]): Promise<(Buffer | null)[]>;
  protokvDelBuffer(table: string, key: string): Promise<Buffer | null>;
  protokvDelManyBuffer(table: string, ...keys: string[]): Promise<(Buffer | null)[]>;
  protokvDrop(table: string): Promise<number>;
  protokvGetAllUpToBuffer(table: string, most: number): Promise<Buffer[] | null>;
  protokvPublish(channel: string, subscriptions: string, message: Buffer): Promise<number>;
  protokvUnsubscribe(channel: string, subscriptions: string, id: number, message: Buffer): Promise<number>;
}
