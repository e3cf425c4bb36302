/**
 * The soak run: `npm run soak -- --duration SECONDS` (default 180).
 *
 * Starts a protokv server (memory store) in a child process and keeps a mixed workload on it for
 * the whole duration: writers (HSET, HMSET, HDEL on keys each owns, checking every previous value
 * returned), readers (HGET, HMGET, HEXIST, HGETALL), publishers and subscribers (every message
 * checked for order and loss per publisher), subscriptions ended and renewed, and connections
 * opened and dropped — some politely, some mid-frame. The key space is fixed, so once warm the
 * server's memory should stay flat. Server RSS (after a full collection) is sampled every few
 * seconds and printed; the run fails (exit 1) on any wrong answer, or if RSS after the warm-up
 * grows by more than --max-growth (default 0.5, i.e. 50%).
 *
 * Flags: --duration S (180), --sample-every S (5), --warmup S (a quarter of the duration, at most
 * 30), --max-growth F (0.5), --writers N (6), --readers N (6), --publishers N (3),
 * --subscribers N (12), --churners N (4), --keys N (2000 per writer), --seed N (random).
 */
import net from 'node:net';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { connect, type KvClient } from '../src/client/client.js';
import type { Subscription } from '../src/client/core/subscription.js';
import { encodeFrame } from '../src/codec/frame.js';
import { requests } from '../src/protocol/requests.js';
import type { KvValue } from '../src/protocol/values.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { forkServer, type ServerChild, type ServerStats } from '../test/fuzz/server-process.js';
import { Rand } from '../test/fuzz/random.js';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '180' },
    'sample-every': { type: 'string', default: '5' },
    warmup: { type: 'string' },
    'max-growth': { type: 'string', default: '0.5' },
    writers: { type: 'string', default: '6' },
    readers: { type: 'string', default: '6' },
    publishers: { type: 'string', default: '3' },
    subscribers: { type: 'string', default: '12' },
    churners: { type: 'string', default: '4' },
    keys: { type: 'string', default: '2000' },
    seed: { type: 'string' },
  },
  strict: true,
});

function number(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`--${name} must be a number of at least ${min}, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

const durationS = number('duration', flags.duration, 1);
const sampleEveryS = number('sample-every', flags['sample-every'], 0.5);
const warmupS = flags.warmup === undefined ? Math.min(30, durationS / 4) : number('warmup', flags.warmup, 0);
const maxGrowth = number('max-growth', flags['max-growth'], 0);
const writers = Math.floor(number('writers', flags.writers, 1));
const readers = Math.floor(number('readers', flags.readers, 0));
const publishers = Math.floor(number('publishers', flags.publishers, 0));
const subscribers = Math.floor(number('subscribers', flags.subscribers, 0));
const churners = Math.floor(number('churners', flags.churners, 0));
const keysPerWriter = Math.floor(number('keys', flags.keys, 1));
const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Math.floor(number('seed', flags.seed, 0));

const TABLE = 'soak';
const SMALL_TABLE = 'soak-small';
const TOPICS = ['soak-0', 'soak-1', 'soak-2', 'soak-3'];
const MIB = 1024 * 1024;
const mib = (n: number): string => (n / MIB).toFixed(1);

const counters = { ops: 0, published: 0, received: 0, subscriptions: 0, connections: 0, aborted: 0 };
const errors: string[] = [];
let errorCount = 0;
function wrong(text: string): void {
  errorCount++;
  if (errors.length < 20) errors.push(text);
}

const start = performance.now();
const stopAt = start + durationS * 1000;
const running = (): boolean => performance.now() < stopAt;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Values of every type, a few large enough to be sent compressed. */
function value(rand: Rand, tag: string): KvValue {
  switch (rand.int(6)) {
    case 0:
      return BigInt(rand.int(2 ** 31)) * 4_294_967_291n;
    case 1:
      return rand.bytes(rand.size(256));
    case 2:
      return rand.next() * 1e6;
    case 3:
      return rand.chance(0.5);
    case 4:
      return `${tag}:${'x'.repeat(rand.chance(0.1) ? rand.range(1437, 8000) : rand.int(200))}`;
    default:
      return null;
  }
}

function same(a: KvValue | undefined, b: KvValue | undefined): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.from(a).equals(Buffer.from(b));
  return Object.is(a, b);
}

const describeValue = (v: KvValue | undefined): string =>
  v instanceof Uint8Array ? `bytes(${v.length})` : typeof v === 'string' && v.length > 40 ? `string(${v.length})` : String(v);

/** Each writer owns its keys, so it knows every previous value the server must return. */
async function writer(server: ServerChild, index: number): Promise<void> {
  const rand = new Rand(seed + 101 * index);
  const kv = await connect({ host: '127.0.0.1', port: server.port });
  const mine = new Map<string, KvValue>();
  const key = (i: number): string => `w${index}/k${i}`;
  // Write results say `undefined` both for a new key and for one that held the empty value.
  const expectPrevious = (k: string, got: KvValue | undefined, expected: KvValue | undefined): void => {
    const want = expected ?? undefined;
    if (!same(got, want)) wrong(`writer ${index}: ${k} previous ${describeValue(got)}, expected ${describeValue(want)}`);
  };
  try {
    while (running()) {
      const batch: Promise<void>[] = [];
      for (let n = 0; n < 16; n++) {
        const op = rand.int(10);
        if (op < 5) {
          const k = key(rand.int(keysPerWriter));
          const v = value(rand, k);
          const expected = mine.get(k);
          mine.set(k, v);
          batch.push(kv.hset(TABLE, k, v).then((got) => expectPrevious(k, got, expected)));
        } else if (op < 7) {
          const ks = [...new Set(Array.from({ length: rand.range(1, 6) }, () => key(rand.int(keysPerWriter))))];
          const pairs = ks.map((k) => [k, value(rand, k)] as const);
          const expected = ks.map((k) => mine.get(k));
          for (const [k, v] of pairs) mine.set(k, v);
          batch.push(kv.hmset(TABLE, pairs).then((got) => got.forEach((g, i) => expectPrevious(ks[i], g, expected[i]))));
        } else if (op < 8) {
          const k = key(rand.int(keysPerWriter));
          const expected = mine.get(k);
          mine.delete(k);
          batch.push(kv.hdel(TABLE, k).then((got) => expectPrevious(k, got, expected)));
        } else if (op < 9) {
          const k = key(rand.int(keysPerWriter));
          const expected = mine.get(k);
          batch.push(
            kv.hget(TABLE, k).then((got) => {
              if (!same(got, expected)) wrong(`writer ${index}: HGET ${k} = ${describeValue(got)}, expected ${describeValue(expected)}`);
            }),
          );
        } else {
          batch.push(kv.hset(SMALL_TABLE, `s${rand.int(50)}`, value(rand, 'small')).then(() => {}));
        }
      }
      await Promise.all(batch);
      counters.ops += batch.length;
      await sleep(rand.int(4));
    }
  } catch (err) {
    wrong(`writer ${index}: ${(err as Error).message}`);
  } finally {
    await kv.close().catch(() => {});
  }
}

async function reader(server: ServerChild, index: number): Promise<void> {
  const rand = new Rand(seed + 211 * index);
  const kv = await connect({ host: '127.0.0.1', port: server.port });
  const anyKey = (): string => `w${rand.int(writers)}/k${rand.int(keysPerWriter)}`;
  try {
    while (running()) {
      const batch: Promise<unknown>[] = [];
      for (let n = 0; n < 16; n++) {
        const op = rand.int(10);
        if (op < 5) batch.push(kv.hget(TABLE, anyKey()));
        else if (op < 7) batch.push(kv.hmget(TABLE, Array.from({ length: rand.range(1, 8) }, anyKey)));
        else if (op < 9) batch.push(kv.hexist(TABLE, anyKey()));
        else batch.push(kv.hgetall(SMALL_TABLE));
      }
      await Promise.all(batch);
      counters.ops += batch.length;
      await sleep(rand.int(4));
    }
  } catch (err) {
    wrong(`reader ${index}: ${(err as Error).message}`);
  } finally {
    await kv.close().catch(() => {});
  }
}

/** Messages carry [publisher, topic sequence, padding]: subscribers check order and loss from them. */
async function publisher(server: ServerChild, index: number): Promise<void> {
  const rand = new Rand(seed + 307 * index);
  const kv = await connect({ host: '127.0.0.1', port: server.port });
  const sequence = TOPICS.map(() => 0n);
  try {
    while (running()) {
      const batch: Promise<void>[] = [];
      for (let n = 0; n < 8; n++) {
        const t = rand.int(TOPICS.length);
        batch.push(kv.publish(TOPICS[t], BigInt(index), ++sequence[t], 'p'.repeat(rand.size(2000))));
      }
      await Promise.all(batch);
      counters.ops += batch.length;
      counters.published += batch.length;
      await sleep(rand.range(1, 6));
    }
  } catch (err) {
    wrong(`publisher ${index}: ${(err as Error).message}`);
  } finally {
    await kv.close().catch(() => {});
  }
}

/** Subscribes, reads for a while, leaves, and subscribes again (to another topic, on a new stream). */
async function subscriber(server: ServerChild, index: number): Promise<void> {
  const rand = new Rand(seed + 401 * index);
  const kv = await connect({ host: '127.0.0.1', port: server.port });
  try {
    while (running()) {
      const topic = TOPICS[rand.int(TOPICS.length)];
      const sub: Subscription = await kv.subscribe(topic);
      counters.subscriptions++;
      const last = new Map<bigint, bigint>();
      // Ended by the timer only: leaving the loop as well would unsubscribe a second time.
      const until = Math.min(stopAt, performance.now() + rand.range(3000, 15_000));
      const timer = setTimeout(() => void sub.unsubscribe().catch((err: Error) => wrong(`subscriber ${index}: ${err.message}`)), until - performance.now());
      try {
        for await (const message of sub) {
          counters.received++;
          const [from, seq] = message;
          if (typeof from !== 'bigint' || typeof seq !== 'bigint') {
            wrong(`subscriber ${index}: malformed message ${message.map(describeValue).join(',')}`);
            break;
          }
          const previous = last.get(from);
          if (previous !== undefined && seq !== previous + 1n) {
            wrong(`subscriber ${index} on ${topic}: from publisher ${from}, sequence ${seq} after ${previous}`);
          }
          last.set(from, seq);
        }
      } finally {
        clearTimeout(timer);
      }
    }
  } catch (err) {
    if (running()) wrong(`subscriber ${index}: ${(err as Error).message}`);
  } finally {
    await kv.close().catch(() => {});
  }
}

/** Short-lived connections: a few requests, then a polite close or an abrupt one, sometimes mid-frame. */
async function churner(server: ServerChild, index: number): Promise<void> {
  const rand = new Rand(seed + 503 * index);
  while (running()) {
    try {
      counters.connections++;
      if (rand.chance(0.3)) {
        const socket = net.connect({ host: '127.0.0.1', port: server.port });
        socket.on('error', () => {});
        await once(socket, 'connect');
        const frame = encodeFrame(encodeRequest(requests.hset(TABLE, `churn/${index}`, 'x'.repeat(rand.int(3000)))));
        const sub = rand.chance(0.3) ? encodeFrame(encodeRequest(requests.subscribe(TOPICS[rand.int(TOPICS.length)]))) : Buffer.alloc(0);
        socket.write(Buffer.concat([sub.length > 0 ? sub : frame, frame.subarray(0, rand.int(frame.length))]));
        await sleep(rand.int(20));
        socket.destroy();
        counters.aborted++;
      } else {
        const kv: KvClient = await connect({ host: '127.0.0.1', port: server.port });
        for (let n = rand.range(1, 5); n > 0; n--) {
          await kv.hset(TABLE, `churn/${index}`, value(rand, 'churn'));
          await kv.hget(TABLE, `w${rand.int(writers)}/k${rand.int(keysPerWriter)}`);
          counters.ops += 2;
        }
        await kv.close();
      }
    } catch (err) {
      wrong(`churner ${index}: ${(err as Error).message}`);
    }
    await sleep(rand.int(10));
  }
}

interface Sample {
  t: number;
  stats: ServerStats;
  opsPerSecond: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
};

process.stdout.write(
  `protokv soak: ${durationS} s (warm-up ${warmupS} s), ${writers} writers × ${keysPerWriter} keys, ${readers} readers, ` +
    `${publishers} publishers, ${subscribers} subscribers, ${churners} churners; seed ${seed}\n`,
);
const server = await forkServer();
const samples: Sample[] = [];
let failed = false;
try {
  const baseline = await server.stats({ gc: true });
  process.stdout.write(`server RSS at start ${mib(baseline.rss)} MiB, heap ${mib(baseline.heapUsed)} MiB\n`);
  process.stdout.write('     t(s)   RSS MiB  heap MiB  buffers MiB  conns  subs     keys     ops/s\n');
  const workers = [
    ...Array.from({ length: writers }, (_, i) => writer(server, i)),
    ...Array.from({ length: readers }, (_, i) => reader(server, i)),
    ...Array.from({ length: subscribers }, (_, i) => subscriber(server, i)),
    ...Array.from({ length: publishers }, (_, i) => publisher(server, i)),
    ...Array.from({ length: churners }, (_, i) => churner(server, i)),
  ];
  let lastOps = 0;
  let lastT = 0;
  const sampler = (async () => {
    while (running()) {
      await sleep(Math.min(sampleEveryS * 1000, Math.max(0, stopAt - performance.now())));
      const t = (performance.now() - start) / 1000;
      const stats = await server.stats({ gc: true });
      const opsPerSecond = (counters.ops - lastOps) / (t - lastT);
      lastOps = counters.ops;
      lastT = t;
      samples.push({ t, stats, opsPerSecond });
      process.stdout.write(
        `${t.toFixed(1).padStart(9)} ${mib(stats.rss).padStart(9)} ${mib(stats.heapUsed).padStart(9)} ${mib(stats.arrayBuffers).padStart(12)} ` +
          `${String(stats.connections).padStart(6)} ${String(stats.subscriptions).padStart(5)} ${String(stats.storedEntries).padStart(8)} ` +
          `${Math.round(opsPerSecond).toString().padStart(9)}${t < warmupS ? '  (warm-up)' : ''}\n`,
      );
    }
  })();
  await Promise.all([...workers, sampler]);

  const left = await server.connectionsSettle(15_000);
  const end = await server.stats({ gc: true });
  const steady = samples.filter((s) => s.t >= warmupS);
  const window = Math.min(3, Math.max(1, Math.floor(steady.length / 3)));
  const first = steady.slice(0, window);
  const last = steady.slice(-window);
  const rssFrom = median(first.map((s) => s.stats.rss));
  const rssTo = median(last.map((s) => s.stats.rss));
  const heapFrom = median(first.map((s) => s.stats.heapUsed));
  const heapTo = median(last.map((s) => s.stats.heapUsed));
  const growth = rssTo / rssFrom - 1;
  const seconds = (performance.now() - start) / 1000;

  process.stdout.write(
    `\noperations ${counters.ops.toLocaleString('en-US')} (${Math.round(counters.ops / seconds).toLocaleString('en-US')}/s), ` +
      `published ${counters.published.toLocaleString('en-US')}, received by subscribers ${counters.received.toLocaleString('en-US')}, ` +
      `subscriptions ${counters.subscriptions}, short connections ${counters.connections} (${counters.aborted} dropped abruptly)\n`,
  );
  process.stdout.write(`wrong answers or errors: ${errorCount}\n`);
  for (const e of errors) process.stdout.write(`  - ${e}\n`);
  process.stdout.write(`connections left after the run: ${left}; subscriptions left: ${end.subscriptions}\n`);
  if (steady.length === 0) {
    process.stdout.write('no sample after the warm-up: run longer to measure growth\n');
  } else {
    process.stdout.write(
      `RSS after warm-up (median of ${window} samples): ${mib(rssFrom)} MiB → ${mib(rssTo)} MiB at the end ` +
        `(${(growth * 100).toFixed(1)}%, limit ${(maxGrowth * 100).toFixed(0)}%); heap used ${mib(heapFrom)} → ${mib(heapTo)} MiB; ` +
        `peak RSS ${mib(Math.max(...samples.map((s) => s.stats.rss)))} MiB\n`,
    );
  }
  if (errorCount > 0) failed = true;
  if (left > 0 || end.subscriptions > 0) failed = true;
  if (steady.length > 0 && growth > maxGrowth) failed = true;
} catch (err) {
  failed = true;
  process.stdout.write(`FAIL: ${(err as Error).message}\n${server.stderr()}\n`);
} finally {
  await server.close();
}
process.stdout.write(failed ? 'result: FAIL\n' : 'result: ok\n');
process.exit(failed ? 1 : 0);
