/**
 * The persistent store's durability modes and read cache, as settings and in use: `--durability
 * sync|periodic`, `--sync-interval-ms` and `--cache-size` from flags, the environment and the file,
 * their errors; in periodic mode an acknowledged write is readable at once, is on disk within the
 * interval and survives reopening; sync mode still syncs before acknowledging; a server in periodic
 * mode, killed with SIGKILL, restarts with every acknowledged write.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError, loadConfig, renderServeHelp } from '../src/config.js';
import { connect } from '../src/client/client.js';
import { toValue as v } from '../src/protocol/values.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { startServerProcess } from './helpers/cli.js';
import { tempDir } from './helpers/stores.js';

const MiB = 1024 * 1024;
let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'protokv-durability-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refused(argv: string[], env: NodeJS.ProcessEnv, message: RegExp): Promise<void> {
  await assert.rejects(loadConfig({ argv, env, cwd: dir }), (err: unknown) => err instanceof ConfigError && message.test(err.message));
}

describe('settings', () => {
  test('defaults: sync durability, a 1000 ms interval, a 64 MiB cache', async () => {
    const config = await loadConfig({ argv: [], env: {}, cwd: dir });
    assert.deepEqual(config.persistence, { durability: 'sync', syncIntervalMs: 1000, cacheBytes: 64 * MiB });
  });

  test('from flags, the environment and the [lmdb] table of the file', async () => {
    const flags = await loadConfig({ argv: ['--durability', 'periodic', '--sync-interval-ms', '250', '--cache-size', '1MiB'], env: {}, cwd: dir });
    assert.deepEqual(flags.persistence, { durability: 'periodic', syncIntervalMs: 250, cacheBytes: MiB });
    const env = await loadConfig({ argv: [], env: { PROTOKV_DURABILITY: 'PERIODIC', PROTOKV_SYNC_INTERVAL_MS: '40', PROTOKV_CACHE_SIZE: '0' }, cwd: dir });
    assert.deepEqual(env.persistence, { durability: 'periodic', syncIntervalMs: 40, cacheBytes: 0 });
    const sub = path.join(dir, 'file');
    await mkdir(sub, { recursive: true });
    const file = path.join(sub, 'protokv.toml');
    await writeFile(file, '[lmdb]\ndurability = "periodic"\nsync_interval_ms = 2000\ncache_size = "8MiB"\n');
    const fromFile = await loadConfig({ argv: ['--config', file], env: {}, cwd: dir });
    assert.deepEqual(fromFile.persistence, { durability: 'periodic', syncIntervalMs: 2000, cacheBytes: 8 * MiB });
    assert.equal(fromFile.sources.durability, 'file');
  });

  test('bad values and settings that do not apply are refused, naming the setting', async () => {
    await refused(['--durability', 'everysec'], {}, /invalid value "everysec" for --durability: expected one of sync, periodic/);
    await refused(['--durability', 'periodic', '--sync-interval-ms', '0'], {}, /--sync-interval-ms: expected a whole number from 1 to 3600000/);
    await refused(['--cache-size', 'lots'], {}, /--cache-size: expected a size/);
    await refused(['--sync-interval-ms', '100'], {}, /--sync-interval-ms applies to --durability periodic only/);
    await refused(['--memory', '--durability', 'periodic'], {}, /--durability applies to the persistent store only \(--store lmdb\), not to memory/);
    await refused(['--store', 'redis://127.0.0.1:6379'], { PROTOKV_CACHE_SIZE: '1MiB' }, /PROTOKV_CACHE_SIZE applies to the persistent store only \(PROTOKV_STORE lmdb\), not to redis/);
  });

  test('serve --help lists them under the persistent store', () => {
    const help = renderServeHelp();
    assert.match(help, /Persistent store, --store lmdb \(an \[lmdb\] table in the file\):\n {2}--durability MODE/);
    assert.match(help, /--sync-interval-ms MS/);
    assert.match(help, /--cache-size BYTES/);
  });
});

describe('periodic durability', () => {
  const periodic = { durability: { mode: 'periodic', intervalMs: 200 } } as const;

  test('an acknowledged write is readable at once, on disk within the interval, and there after reopening', async () => {
    const tmp = await tempDir('protokv-periodic-');
    try {
      let store = LmdbStore.open(tmp.dir, periodic);
      // Whether a given commit is answered before its sync depends on timing (a sync can finish
      // before the commit is reported visible), so write rounds until one is: a store that never
      // answers early, in 20 rounds, is not in periodic mode.
      for (let round = 0; round < 20; round++) {
        const written = Array.from({ length: 500 }, (_, i) => store.set('t', `k${i}`, v(BigInt(round * 1000 + i))));
        await Promise.all(written);
        for (let i = 0; i < 500; i++) assert.deepEqual(store.get('t', `k${i}`), v(BigInt(round * 1000 + i)));
        if (store.acknowledgedBeforeSync > 0) break;
        await sleep(5);
      }
      assert.equal(store.len('t'), 500);
      assert.ok(store.acknowledgedBeforeSync > 0, 'no commit was acknowledged before its sync');
      const last = store.get('t', 'k499');
      // On disk within the interval: generous bound, the machine is shared.
      await withTimeout(store.synced(), 10_000, 'the acknowledged writes are synced');
      await store.close();
      store = LmdbStore.open(tmp.dir, periodic);
      assert.deepEqual(store.get('t', 'k499'), last);
      assert.equal(store.len('t'), 500);
      await store.close();
    } finally {
      await tmp.remove();
    }
  });

  test('sync durability acknowledges only synced writes', async () => {
    const tmp = await tempDir('protokv-periodic-');
    try {
      const store = LmdbStore.open(tmp.dir);
      await Promise.all(Array.from({ length: 100 }, (_, i) => store.set('t', `k${i}`, v(BigInt(i)))));
      assert.equal(store.acknowledgedBeforeSync, 0);
      await store.close();
    } finally {
      await tmp.remove();
    }
  });

  test('a server in periodic mode killed with SIGKILL restarts with every acknowledged write', { timeout: 120_000 }, async () => {
    const tmp = await tempDir('protokv-periodic-');
    const data = path.join(tmp.dir, 'data');
    try {
      const server = await startServerProcess(['--data-dir', data, '--listen', '127.0.0.1:0', '--durability', 'periodic', '--sync-interval-ms', '100']);
      const listening = server.logs.find((l) => l.msg === 'listening');
      assert.equal(listening?.durability, 'periodic (synced within 100 ms)');
      const kv = await connect({ host: '127.0.0.1', port: server.port });
      const acknowledged: string[] = [];
      await Promise.all(
        Array.from({ length: 20 }, async (_, lane) => {
          for (let i = 0; i < 50; i++) {
            await kv.hset('t', `${lane}:${i}`, `value ${lane}:${i}`);
            acknowledged.push(`${lane}:${i}`);
          }
        }),
      );
      assert.equal(await kv.hget('t', '19:49'), 'value 19:49');
      await server.stop('SIGKILL');
      await kv.close();

      const restarted = await startServerProcess(['--data-dir', data, '--listen', '127.0.0.1:0']);
      const again = await connect({ host: '127.0.0.1', port: restarted.port });
      try {
        const all = await again.hgetall('t');
        assert.equal(all.size, acknowledged.length);
        for (const key of acknowledged) assert.equal(all.get(key), `value ${key}`, key);
      } finally {
        await again.close();
        await restarted.stop();
      }
    } finally {
      await tmp.remove();
    }
  });
});

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
