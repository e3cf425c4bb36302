import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LmdbStore } from '../src/storage/lmdb.js';
import { toValue } from '../src/protocol/values.js';
import { CRASH_TABLE, crashValue } from './fixtures/storage-crash-values.js';

const WRITER = fileURLToPath(new URL('./fixtures/storage-crash-writer.js', import.meta.url));
const ACKNOWLEDGED_PER_ROUND = 2000;

/** Runs the writer until it has acknowledged `count` keys, kills it with SIGKILL, returns the keys. */
async function writeUntilKilled(dir: string, round: number, count: number, durability: string): Promise<string[]> {
  const child = spawn(process.execPath, [WRITER, dir, String(round), durability], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  const acknowledged: string[] = [];
  for await (const line of createInterface({ input: child.stdout })) {
    acknowledged.push(line);
    if (acknowledged.length === count) {
      child.kill('SIGKILL');
      break;
    }
  }
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  assert.equal(signal, 'SIGKILL', `the writer exited on its own (code ${code}) after ${acknowledged.length} writes`);
  return acknowledged;
}

// Periodic durability acknowledges a write once it is committed, before it is synced: the OS page
// cache holds it, so a crash of the process loses nothing acknowledged either.
for (const durability of ['sync', 'periodic']) {
  test(`every acknowledged write survives kill -9 of the writer (${durability} durability)`, { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protokv-storage-crash-'));
    try {
      // Two rounds: the second one also opens a store whose previous owner was killed.
      const acknowledged: string[] = [];
      for (const round of [0, 1]) acknowledged.push(...(await writeUntilKilled(dir, round, ACKNOWLEDGED_PER_ROUND, durability)));

      const store = LmdbStore.open(dir);
      try {
        for (const key of acknowledged) assert.deepEqual(store.get(CRASH_TABLE, key), crashValue(key), `key ${key}`);
        const types = new Set(acknowledged.map((key) => store.get(CRASH_TABLE, key)?.value?.$case));
        assert.deepEqual([...types].sort(), ['binary', 'integer', 'string']);
        assert.equal(await store.set(CRASH_TABLE, 'after', toValue('still writable')), undefined);
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
