/** The stores every engine-level test runs against, each in a fresh temp dir where it needs one. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Store } from '../../src/storage/store.js';
import { MemoryStore } from '../../src/storage/memory.js';
import { LmdbStore } from '../../src/storage/lmdb.js';

export interface StoreFixture {
  store: Store;
  cleanup(): Promise<void>;
}

export const STORE_KINDS: Record<string, () => Promise<StoreFixture>> = {
  memory: () => Promise.resolve({ store: new MemoryStore(), cleanup: () => Promise.resolve() }),
  lmdb: async () => {
    const tmp = await tempDir('protokv-lmdb-');
    const store = LmdbStore.open(tmp.dir);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await tmp.remove();
      },
    };
  },
};

/** A fresh temp dir, removed by the returned function. */
export async function tempDir(prefix = 'protokv-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
