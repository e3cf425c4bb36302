/**
 * A protokv server in a process of its own, so that its memory can be measured apart from the
 * clients hammering it. Forked by `forkServer` (server-process.ts) with `--expose-gc`; takes its
 * settings as JSON in argv[2] and answers `stats` and `close` messages over IPC.
 */
import type { Value } from '../../src/protocol/generated/abi.js';
import { Service } from '../../src/service/service.js';
import { MemoryStore } from '../../src/storage/memory.js';
import type { Entry } from '../../src/storage/store.js';
import { ProtokvServer } from '../../src/transport/server.js';
import type { ChildRequest, ChildReply, ServerChildOptions } from './server-process.js';

const send = (reply: ChildReply): void => {
  process.send?.(reply);
};

/**
 * The memory store, remembering which tables were written so that a run's data can be removed
 * again: memory measured after that shows what connections left behind, not what was stored.
 */
class ResettableStore extends MemoryStore {
  readonly tablesWritten = new Set<string>();

  override set(table: string, key: string, value: Value): Value | undefined {
    this.tablesWritten.add(table);
    return super.set(table, key, value);
  }

  override setMany(table: string, entries: readonly Entry[]): (Value | undefined)[] {
    this.tablesWritten.add(table);
    return super.setMany(table, entries);
  }

  entryCount(): number {
    let n = 0;
    for (const table of this.tablesWritten) for (const _ of this.iterate(table)) n++;
    return n;
  }

  removeEverything(): void {
    for (const table of this.tablesWritten) this.delMany(table, this.getAll(table).map((e) => e.key));
    this.tablesWritten.clear();
  }
}

const options = JSON.parse(process.argv[2] ?? '{}') as ServerChildOptions;
const store = new ResettableStore();
const service = new Service({ store });
const server = await ProtokvServer.listen({ ...options, service, host: '127.0.0.1', port: 0 });
const gc = (globalThis as { gc?: () => void }).gc;

process.on('message', (message: ChildRequest) => {
  if (message.type === 'stats') {
    if (message.reset) store.removeEverything();
    if (message.gc && gc !== undefined) {
      // Twice: the first pass can leave objects only a second one frees (weak references, finalizers).
      gc();
      gc();
    }
    const m = process.memoryUsage();
    send({
      type: 'stats',
      id: message.id,
      stats: {
        rss: m.rss,
        heapUsed: m.heapUsed,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
        connections: server.connectionCount,
        subscriptions: service.pubsub.size,
        storedEntries: store.entryCount(),
        gc: message.gc && gc !== undefined,
      },
    });
  } else if (message.type === 'close') {
    void server.close().then(() => {
      send({ type: 'closed' });
      process.disconnect();
    });
  }
});
// The parent went away without closing us: nobody is left to serve.
process.on('disconnect', () => process.exit(0));
send({ type: 'listening', port: server.address().port });
