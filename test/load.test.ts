/**
 * Many connections at once (SPEC 4, limits): 5,000 clients connected to one server together, each
 * writing and reading its own key, with no error, and the server's memory staying bounded. The
 * server runs in a process of its own, so each side needs one file descriptor per connection and
 * the server's memory is measured apart from the clients'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type KvClient } from '../src/client/client.js';
import { forkServer } from './fuzz/server-process.js';

const TARGET_CONNECTIONS = 5000;
/** Descriptors each process keeps for itself (stdio, IPC, the listener, libuv internals) plus headroom. */
const RESERVED_FDS = 200;
const MIB = 1024 * 1024;
const mib = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;

/** This process's soft limit on open files (children inherit it), or undefined when it cannot be read. */
function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m !== null) return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    // Not Linux: ask the shell.
  }
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Infinity : Number(out);
  } catch {
    return undefined;
  }
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight. */
async function pool<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

test('5,000 concurrent connections each write and read with no error, and server memory stays bounded', { timeout: 120_000 }, async (t) => {
  const limit = openFileLimit();
  const fit = limit === undefined ? TARGET_CONNECTIONS : Math.min(TARGET_CONNECTIONS, limit - RESERVED_FDS);
  if (fit < TARGET_CONNECTIONS) {
    t.diagnostic(`open-file limit ${limit} (ulimit -n): using ${fit} connections instead of ${TARGET_CONNECTIONS}`);
  }
  assert.ok(fit >= 100, `the open-file limit (${limit}) leaves room for ${fit} connections only`);

  const server = await forkServer();
  const clients: KvClient[] = [];
  try {
    const baseline = await server.stats({ gc: true });

    const errors: string[] = [];
    const opened = await pool(Array.from({ length: fit }), 200, async () => {
      try {
        return await connect({ host: '127.0.0.1', port: server.port });
      } catch (err) {
        errors.push(`connect: ${(err as Error).message}`);
        return undefined;
      }
    });
    for (const c of opened) if (c !== undefined) clients.push(c);
    assert.deepEqual(errors.slice(0, 5), [], `${errors.length} connections failed`);
    assert.equal(await server.connectionsSettle(20_000, fit), fit, 'the server does not see every connection');

    // Every client at once: the server holds all connections and all their requests together.
    await Promise.all(
      clients.map(async (kv, i) => {
        try {
          assert.equal(await kv.hset('load', `k${i}`, `v${i}`), undefined);
          assert.equal(await kv.hget('load', `k${i}`), `v${i}`);
          assert.deepEqual(await kv.hmexist('load', [`k${i}`, `missing-${i}`]), [true, false]);
        } catch (err) {
          errors.push(`client ${i}: ${(err as Error).message}`);
        }
      }),
    );
    assert.deepEqual(errors.slice(0, 5), [], `${errors.length} clients failed`);

    const loaded = await server.stats({ gc: true });
    assert.equal(loaded.connections, fit);
    assert.equal(loaded.storedEntries, fit);
    const perConnection = (loaded.rss - baseline.rss) / fit;
    t.diagnostic(
      `${fit} connections: server RSS ${mib(baseline.rss)} → ${mib(loaded.rss)} (${(perConnection / 1024).toFixed(1)} KiB per connection), ` +
        `heap used ${mib(baseline.heapUsed)} → ${mib(loaded.heapUsed)}; client process RSS ${mib(process.memoryUsage().rss)}`,
    );

    await pool(clients.splice(0), 500, (kv) => kv.close());
    const left = await server.connectionsSettle(20_000);
    const closed = await server.stats({ gc: true });
    t.diagnostic(`after closing: ${left} connections, server RSS ${mib(closed.rss)}, heap used ${mib(closed.heapUsed)}`);
    assert.equal(left, 0, 'connections left open on the server');

    // Generous bounds: they catch per-connection buffers that grow, not allocator noise.
    assert.ok(loaded.rss - baseline.rss < 512 * MIB, `server RSS grew by ${mib(loaded.rss - baseline.rss)}`);
    assert.ok(loaded.heapUsed - baseline.heapUsed < fit * 64 * 1024, `server heap grew by ${mib(loaded.heapUsed - baseline.heapUsed)}`);
    assert.ok(closed.heapUsed < loaded.heapUsed, 'closing the connections freed no heap');
  } finally {
    await Promise.all(clients.map((kv) => kv.close().catch(() => {})));
    await server.close();
  }
});
