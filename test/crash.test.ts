/**
 * Crash safety end to end: a real server on the persistent store, thousands of writes over the
 * network, SIGKILL, restart on the same directory — every acknowledged write is there, typed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '../src/client/client.js';
import type { KvValue } from '../src/protocol/values.js';
import { runCli, startServerProcess } from './helpers/cli.js';
import { tempDir } from './helpers/stores.js';

function valueFor(i: number): KvValue {
  switch (i % 4) {
    case 0:
      return BigInt(i) * 1_000_000_007n - (1n << 62n);
    case 1:
      return `string-${i}`;
    case 2:
      return Buffer.from([i & 0xff, (i >> 8) & 0xff, 0, 255]);
    default:
      return i + 0.5;
  }
}

test('SIGKILL loses no acknowledged write', async (t) => {
  const dir = await tempDir();
  try {
    const server = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect({ host: '127.0.0.1', port: server.port })));
    const acknowledged = new Set<number>();
    let next = 0;
    let killed = false;
    // Writers keep many requests in flight; the server is killed mid-stream.
    const writers = clients.map(async (kv) => {
      while (!killed) {
        const batch = Array.from({ length: 64 }, () => next++);
        await Promise.all(
          batch.map((i) =>
            (i % 16 === 0 ? kv.hmset('crash', [[`k${i}`, valueFor(i)]]) : kv.hset('crash', `k${i}`, valueFor(i))).then(
              () => void acknowledged.add(i),
              () => {},
            ),
          ),
        );
      }
    });
    while (acknowledged.size < 3000) await new Promise((r) => setTimeout(r, 5));
    killed = true;
    server.child.kill('SIGKILL');
    await server.stop('SIGKILL');
    await Promise.all(writers);
    for (const kv of clients) await kv.close().catch(() => {});

    const again = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
    const kv = await connect({ host: '127.0.0.1', port: again.port });
    const stored = await kv.hgetall('crash');
    for (const i of acknowledged) assert.deepEqual(stored.get(`k${i}`), valueFor(i), `acknowledged key k${i}`);
    for (const [k, v] of stored) assert.deepEqual(v, valueFor(Number(k.slice(1))), `no torn value at ${k}`);
    t.diagnostic(`acknowledged ${acknowledged.size}, found ${stored.size}`);
    await kv.close();
    assert.equal(await again.stop(), 0);
  } finally {
    await dir.remove();
  }
});

test('a read-only data dir gives 500s with a clear message, and reads still work', { skip: process.getuid?.() === 0 ? 'root ignores file permissions' : false }, async () => {
  const dir = await tempDir();
  try {
    const first = await startServerProcess(['--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
    await runCli(['hset', 't', 'k', 'v', '--server', first.address]);
    await first.stop();
    await chmod(join(dir.dir, 'data.mdb'), 0o444);
    await chmod(dir.dir, 0o555);
    const r = await runCli(['serve', '--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /data|permission|read-only|EACCES/i);
  } finally {
    await chmod(dir.dir, 0o755).catch(() => {});
    await dir.remove();
  }
});

test('startup on a foreign data dir fails with a clear error and leaves it untouched', async () => {
  const dir = await tempDir();
  try {
    const junk = Buffer.from('this is somebody else\'s file, not an LMDB environment\n'.repeat(200));
    await writeFile(join(dir.dir, 'data.mdb'), junk);
    const r = await runCli(['serve', '--data-dir', dir.dir, '--listen', '127.0.0.1:0']);
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /data\.mdb|not an? .*(LMDB|database)|corrupt|unrecogni/i);
    assert.ok((await readFile(join(dir.dir, 'data.mdb'))).equals(junk), 'the file is unchanged');
  } finally {
    await dir.remove();
  }
});

test('a data dir path that is a file fails with a clear error', async () => {
  const dir = await tempDir();
  try {
    await mkdir(join(dir.dir, 'sub'));
    await writeFile(join(dir.dir, 'sub', 'file'), 'x');
    const r = await runCli(['serve', '--data-dir', join(dir.dir, 'sub', 'file'), '--listen', '127.0.0.1:0']);
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /not a directory|file/i);
  } finally {
    await dir.remove();
  }
});
