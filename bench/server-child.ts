/**
 * A minimal protokv server process for the comparison benchmark, used when the `protokv serve`
 * command is unavailable: `node dist/bench/server-child.js (--memory | --data-dir DIR)`.
 * Listens on a free loopback port and prints the same `listening` log line as `protokv serve`;
 * SIGTERM closes it gracefully.
 */
import { parseArgs } from 'node:util';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { ProtokvServer } from '../src/transport/server.js';

const { values } = parseArgs({ options: { memory: { type: 'boolean' }, 'data-dir': { type: 'string' } }, strict: true });
const dataDir = values['data-dir'];
if (values.memory !== true && dataDir === undefined) {
  process.stderr.write('usage: server-child (--memory | --data-dir DIR)\n');
  process.exit(2);
}
const store = dataDir === undefined ? new MemoryStore() : LmdbStore.open(dataDir);
const server = await ProtokvServer.listen({ service: new Service({ store }), host: '127.0.0.1', port: 0 });
const { host, port } = server.address();
process.stdout.write(`${JSON.stringify({ level: 30, pid: process.pid, msg: 'listening', address: `${host}:${port}` })}\n`);
const stop = (): void => {
  void server.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
