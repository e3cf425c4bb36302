/**
 * A local protokv cluster to try things on: a Redis Cluster of 3 masters and 3 replicas, two
 * `protokv serve` nodes on it, and a round-robin TCP balancer in front of them, all on loopback
 * ports the OS picks. Prints the addresses and runs until Ctrl-C, then stops everything and
 * removes its temporary directories.
 *
 * `npm run cluster:demo [-- --nodes N] [-- --port P]` (P: the balancer's port, default any free one).
 */
import { parseArgs } from 'node:util';
import { RedisCluster } from '../test/helpers/redis-cluster.js';
import { startServerProcess, type ServerProcess } from '../test/helpers/cli.js';
import { TcpBalancer } from './tcp-balancer.js';

const { values: flags } = parseArgs({
  options: { nodes: { type: 'string', default: '2' }, port: { type: 'string', default: '0' }, help: { type: 'boolean', short: 'h' } },
  strict: true,
});
if (flags.help === true) {
  process.stdout.write('usage: npm run cluster:demo [-- --nodes N] [-- --port BALANCER_PORT]\n');
  process.exit(0);
}
const nodeCount = Number(flags.nodes);
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 16) throw new Error('--nodes: expected 1 to 16');

const log = (line: string) => process.stderr.write(`${line}\n`);

log('starting a Redis Cluster (3 masters, 3 replicas)…');
const cluster = await RedisCluster.start();
const nodes: ServerProcess[] = [];
let balancer: TcpBalancer | undefined;
try {
  for (let i = 0; i < nodeCount; i++) nodes.push(await startServerProcess(['--listen', '127.0.0.1:0', '--store', cluster.url()]));
  balancer = await TcpBalancer.listen(
    nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    Number(flags.port),
  );
  process.stdout.write(
    [
      `Redis Cluster:  ${cluster.url()}`,
      ...nodes.map((n, i) => `protokv node ${i + 1}: ${n.address}`),
      `balancer:       127.0.0.1:${balancer.port}`,
      '',
      'Try, in another terminal:',
      `  npx protokv hset users ada Lovelace --server 127.0.0.1:${balancer.port}`,
      `  npx protokv subscribe news --server 127.0.0.1:${balancer.port}`,
      `  npx protokv publish news hello --server 127.0.0.1:${balancer.port}`,
      '',
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
} finally {
  log('stopping…');
  await balancer?.close();
  await Promise.all(nodes.map((n) => n.stop()));
  await cluster.stop();
}
