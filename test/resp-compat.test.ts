/**
 * protokv's RESP listener next to a real redis-server, started by the test: the same commands
 * (and the same malformed input) sent to both must get byte-for-byte the same replies, in RESP2
 * and RESP3, on the memory and the persistent store. Only replies whose order Redis leaves
 * unspecified (HKEYS, HGETALL, …) are sorted before comparing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LmdbStore } from '../src/storage/lmdb.js';
import { missingRedis, RawResp, startRedis, startResp, type RedisProcess, type Reply, type RespEnv } from './helpers/resp.js';
import { tempDir } from './helpers/stores.js';

const skip = missingRedis();

type Script = (string | Buffer)[][];

const LONG = 'x'.repeat(200);

/** Command sequences whose replies must match Redis's exactly. */
const SCRIPTS: Record<string, Script> = {
  'hash basics': [
    ['HSET', 'h', 'a', '1', 'b', '2'],
    ['HSET', 'h', 'a', '3', 'c', '4', 'a', '5'],
    ['HGET', 'h', 'a'],
    ['HGET', 'h', 'zz'],
    ['HGET', 'nokey', 'a'],
    ['HMGET', 'h', 'a', 'zz', 'b'],
    ['HMGET', 'nokey', 'a'],
    ['HMSET', 'h', 'd', ''],
    ['HGET', 'h', 'd'],
    ['HLEN', 'h'],
    ['HLEN', 'nokey'],
    ['HSTRLEN', 'h', 'a'],
    ['HSTRLEN', 'h', 'zz'],
    ['HEXISTS', 'h', 'a'],
    ['HEXISTS', 'h', 'zz'],
    ['HSETNX', 'h', 'a', '9'],
    ['HSETNX', 'h', 'n', '9'],
    ['HGETALL', 'h'],
    ['HKEYS', 'h'],
    ['HVALS', 'h'],
    ['HGETALL', 'nokey'],
    ['HKEYS', 'nokey'],
    ['HDEL', 'h', 'a', 'zz', 'a'],
    ['HDEL', 'nokey', 'a'],
    ['HDEL', 'h', 'b', 'c', 'd', 'n'],
    ['EXISTS', 'h'],
    ['HLEN', 'h'],
  ],
  'counters': [
    ['HINCRBY', 'c', 'n', '5'],
    ['HINCRBY', 'c', 'n', '-7'],
    ['HINCRBY', 'c', 'n', 'x'],
    ['HINCRBY', 'c', 'n', '1.5'],
    ['HINCRBY', 'c', 'n', '9223372036854775807'],
    ['HINCRBY', 'c', 'n', '9223372036854775808'],
    ['HSET', 'c', 'big', '9223372036854775806'],
    ['HINCRBY', 'c', 'big', '1'],
    ['HINCRBY', 'c', 'big', '1'],
    ['HSET', 'c', 's', ' 11', 't', '11 ', 'z', '007'],
    ['HINCRBY', 'c', 's', '1'],
    ['HINCRBY', 'c', 't', '1'],
    ['HINCRBY', 'c', 'z', '1'],
    ['HINCRBYFLOAT', 'c', 'f', '1.5'],
    ['HINCRBYFLOAT', 'c', 'f', '1.23'],
    ['HINCRBYFLOAT', 'c', 'f', '-2.73'],
    ['HINCRBYFLOAT', 'c', 'g', '1e3'],
    ['HINCRBYFLOAT', 'c', 'g', '0.5'],
    ['HINCRBYFLOAT', 'c', 'h', '0.0000005'],
    ['HINCRBYFLOAT', 'c', 'f', 'abc'],
    ['HINCRBYFLOAT', 'c', 'f', 'inf'],
    ['HINCRBYFLOAT', 'c', 'f', '+inf'],
    ['HINCRBYFLOAT', 'c', 's', '1'],
    ['HSET', 'c', 'small', '5'],
    ['HINCRBYFLOAT', 'c', 'small', '10'],
    ['HINCRBY', 'c', 'g', '1'],
    ['HGET', 'c', 'n'],
    ['HGET', 'c', 'g'],
    ['HSTRLEN', 'c', 'n'],
  ],
  'random fields': [
    ['HSET', 'r', 'a', '1', 'b', '2', 'c', '3'],
    ['HRANDFIELD', 'r', '0'],
    ['HRANDFIELD', 'r', '3'],
    ['HRANDFIELD', 'r', '10'],
    ['HRANDFIELD', 'r', '10', 'WITHVALUES'],
    ['HRANDFIELD', 'nokey'],
    ['HRANDFIELD', 'nokey', '5'],
    ['HRANDFIELD', 'nokey', '-5', 'withvalues'],
    ['HRANDFIELD', 'r', '1', 'x'],
    ['HRANDFIELD', 'r', '1', 'withvalues', 'x'],
    ['HRANDFIELD', 'r', 'x'],
    ['HRANDFIELD', 'r', '-9223372036854775808'],
    ['HRANDFIELD', 'r', '-9223372036854770000', 'withvalues'],
  ],
  'keys': [
    ['HSET', 'k1', 'f', 'v'],
    ['HSET', 'k2', 'f', 'v'],
    ['EXISTS', 'k1', 'k1', 'k3'],
    ['TYPE', 'k1'],
    ['TYPE', 'k3'],
    ['DBSIZE'],
    ['KEYS', 'k*'],
    ['KEYS', 'k[1]'],
    ['KEYS', 'zz*'],
    ['SCAN', '0', 'COUNT', '100'],
    ['SCAN', '0', 'MATCH', 'k2'],
    ['SCAN', '0', 'TYPE', 'string'],
    ['SCAN', '0', 'COUNT', '0'],
    ['SCAN', '0', 'FOO'],
    ['SCAN', 'x'],
    ['HSCAN', 'k1', '0'],
    ['HSCAN', 'k1', '0', 'MATCH', 'z*'],
    ['HSCAN', 'k1', 'abc'],
    ['HSCAN', 'k1', '0', 'COUNT', 'x'],
    ['HSCAN', 'k1', '0', 'COUNT', '0'],
    ['HSCAN', 'nokey', '0'],
    ['OBJECT', 'ENCODING', 'k1'],
    ['OBJECT', 'ENCODING', 'k3'],
    ['DEL', 'k1', 'k3', 'k1'],
    ['UNLINK', 'k2'],
    ['DBSIZE'],
    ['FLUSHDB', 'ASYNC'],
    ['FLUSHALL', 'x'],
    ['DBSIZE'],
  ],
  'errors and connection commands': [
    ['PING'],
    ['PING', 'hi'],
    ['PING', 'a', 'b'],
    ['ECHO', 'x'],
    ['ECHO'],
    ['SELECT', '0'],
    ['SELECT', 'x'],
    ['SELECT', '99999999999'],
    ['HSET', 'h'],
    ['HSET', 'h', 'a'],
    ['HSET', 'h', 'a', '1', 'b'],
    ['HMSET', 'h', 'a', '1', 'b'],
    ['HGET', 'h'],
    ['hget', 'h', 'a', 'b'],
    ['NOSUCHCOMMAND'],
    ['nosuchcommand', 'a', 'b c', ''],
    ['nosuch', LONG, LONG],
    [LONG],
    ['nosuch', Buffer.from('a\0b'), 'x\r\ny'],
    ['CLIENT'],
    ['CLIENT', 'NOPE'],
    ['CLIENT', 'SETNAME', 'a b'],
    ['CLIENT', 'SETNAME', 'ok-name'],
    ['CLIENT', 'GETNAME'],
    ['CLIENT', 'SETNAME', ''],
    ['CLIENT', 'GETNAME'],
    ['CLIENT', 'KILL'],
    ['CLIENT', 'KILL', 'ID', '0'],
    ['CLIENT', 'KILL', 'TYPE', 'nope'],
    ['CLIENT', 'KILL', '1.2.3.4:5'],
    ['CLIENT', 'LIST', 'TYPE', 'nope'],
    ['CLIENT', 'REPLY', 'nope'],
    ['CONFIG', 'GET', 'appendonly'],
    ['CONFIG', 'GET', 'nosuch'],
    ['CONFIG', 'SET', 'nosuch', '1'],
    ['CONFIG', 'SET', 'hash-max-listpack-entries', 'x'],
    ['CONFIG', 'SET', 'hash-max-listpack-entries', '128', 'hash-max-listpack-entries', '128'],
    ['CONFIG'],
    ['OBJECT', 'NOPE', 'x'],
    ['HELLO', '4'],
    ['HELLO', 'x'],
    ['HELLO', '2', 'NOPE'],
    ['AUTH', 'x'],
    ['AUTH', 'default', 'x'],
    ['AUTH', 'nobody', 'x'],
    ['AUTH', 'a', 'b', 'c'],
    ['PUBLISH', 'ch', 'm'],
    ['PUBSUB', 'NUMSUB', 'a', 'b'],
    ['PUBSUB', 'NUMPAT'],
    ['PUBSUB', 'CHANNELS'],
    ['UNSUBSCRIBE'],
    ['PUNSUBSCRIBE', 'x*'],
  ],
};

/** Commands whose reply order Redis does not specify: sorted before comparing. */
function normalize(command: (string | Buffer)[], reply: Reply): Reply {
  const name = command[0].toString().toLowerCase();
  const sortItems = (items: Reply[]): Reply[] => [...items].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const sortPairs = (items: Reply[]): Reply[] => {
    const pairs: Reply[][] = [];
    for (let i = 0; i < items.length; i += 2) pairs.push([items[i], items[i + 1]]);
    return pairs.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))).flat();
  };
  if (reply.t !== 'array' && reply.t !== 'map' && reply.t !== 'set') return reply;
  switch (name) {
    case 'hkeys':
    case 'hvals':
    case 'keys':
      return { ...reply, v: sortItems(reply.v) };
    case 'hgetall':
      return { ...reply, v: sortPairs(reply.v) };
    case 'hrandfield':
      return { ...reply, v: command.length === 4 && reply.t === 'array' && reply.v[0]?.t !== 'array' ? sortPairs(reply.v) : sortItems(reply.v) };
    case 'scan':
    case 'hscan': {
      const [cursor, items] = reply.v;
      if (items?.t !== 'array') return reply;
      return { ...reply, v: [cursor, { ...items, v: name === 'hscan' ? sortPairs(items.v) : sortItems(items.v) }] };
    }
    default:
      return reply;
  }
}

async function runScript(port: number, script: Script, protocol: 2 | 3): Promise<Reply[]> {
  const c = await RawResp.connect(port);
  try {
    if (protocol === 3) await c.call('HELLO', '3');
    await c.call('FLUSHALL');
    const out: Reply[] = [];
    for (const command of script) out.push(normalize(command, await c.call(...command)));
    return out;
  } finally {
    c.destroy();
  }
}

const show = (r: Reply): string => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? Buffer.from((v as { data: number[] }).data).toString('latin1') : v));

for (const storeKind of ['memory', 'lmdb'] as const) {
  describe(`RESP replies match redis-server's (${storeKind} store)`, { skip }, () => {
    let redis: RedisProcess;
    let env: RespEnv;
    let removeDir: (() => Promise<void>) | undefined;
    before(async () => {
      redis = await startRedis();
      if (storeKind === 'lmdb') {
        const tmp = await tempDir('protokv-resp-compat-');
        removeDir = () => tmp.remove();
        env = await startResp({ store: LmdbStore.open(tmp.dir) });
      } else {
        env = await startResp();
      }
    });
    after(async () => {
      await env?.close();
      await redis?.stop();
      await removeDir?.();
    });

    for (const [name, script] of Object.entries(SCRIPTS)) {
      for (const protocol of [2, 3] as const) {
        test(`${name}, RESP${protocol}`, async () => {
          const [ours, theirs] = await Promise.all([runScript(env.port, script, protocol), runScript(redis.port, script, protocol)]);
          for (let i = 0; i < script.length; i++) {
            assert.deepEqual(ours[i], theirs[i], `${script[i].map(String).join(' ').slice(0, 80)}\n  protokv: ${show(ours[i])}\n  redis:   ${show(theirs[i])}`);
          }
        });
      }
    }

    /** Sends raw bytes to both servers: same replies, and both close (or both stay open). */
    const sameRaw = async (input: string, thenPing: boolean): Promise<void> => {
      const results = await Promise.all(
        [env.port, redis.port].map(async (port) => {
          const c = await RawResp.connect(port);
          c.write(input);
          if (thenPing) c.send('PING');
          const replies: Reply[] = [];
          const deadline = Date.now() + 10_000;
          while (!c.ended && Date.now() < deadline) {
            try {
              replies.push(...(await c.replies(1, 2000)));
            } catch {
              break;
            }
            if (thenPing && replies.at(-1)?.t === 'simple') break;
          }
          if (!thenPing) await c.closed();
          const closed = c.ended;
          c.destroy();
          return { replies, closed };
        }),
      );
      assert.deepEqual(results[0], results[1], `for ${JSON.stringify(input)}`);
    };

    test('protocol errors: the same error, then the connection is closed', async () => {
      for (const input of [
        '*3000000000\r\n',
        '*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n',
        '*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n',
        '*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n',
        '*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n',
        '*1\r\nfoo\r\n',
        'set """test-key""" test-value\r\nping\r\n',
        '*1\r\n$4\r\nPING\r\n*x\r\n',
      ]) {
        await sameRaw(input, false);
      }
    });

    test('empty and negative requests are ignored; inline commands work', async () => {
      for (const input of ['\r\n', '*-10\r\n', '*0\r\n', 'PING\r\n', 'ECHO "a b"\r\n', '  \n']) await sameRaw(input, true);
    });
  });
}
