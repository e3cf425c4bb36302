/**
 * What a Redis Cluster failover costs protokv clients: a 3-master + 3-replica cluster on loopback,
 * two protokv nodes over it, writers writing new keys through both while one master is killed
 * with SIGKILL; once the cluster has settled every acknowledged write is read back. Run once
 * without and once with `?wait_replicas=1`, each on a fresh cluster.
 *
 * `npm run bench:failover [-- --writers 50] [-- --node-timeout-ms 2000] [-- --repeat 1]`; prints
 * markdown on stdout, progress on stderr.
 */
import { parseArgs } from 'node:util';
import type { KvClient } from '../src/client/client.js';
import { RedisCluster, startRedisNode, type RedisBackedNode } from '../test/helpers/redis-cluster.js';
import { runFailover, type FailoverResult } from '../test/helpers/failover.js';

const { values: flags } = parseArgs({
  options: {
    writers: { type: 'string', default: '50' },
    'node-timeout-ms': { type: 'string', default: '2000' },
    repeat: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (flags.help === true) {
  process.stdout.write('usage: npm run bench:failover [-- --writers N] [-- --node-timeout-ms MS] [-- --repeat N]\n');
  process.exit(0);
}
const writers = Number(flags.writers);
const nodeTimeoutMs = Number(flags['node-timeout-ms']);
const repeat = Number(flags.repeat);
const log = (line: string) => process.stderr.write(`${line}\n`);

async function once(query: string): Promise<FailoverResult> {
  const cluster = await RedisCluster.start({ nodeTimeoutMs });
  const nodes: RedisBackedNode[] = [];
  const clients: KvClient[] = [];
  try {
    for (let i = 0; i < 2; i++) nodes.push(await startRedisNode(cluster.url(query)));
    for (const node of nodes) clients.push(await node.client());
    return await runFailover({
      cluster,
      clients,
      writers,
      tables: Array.from({ length: 48 }, (_, i) => `table-${i}`),
      warmupMs: 3000,
      afterRecoveryMs: 2000,
      recoveryTimeoutMs: 60_000,
      // With wait_replicas the promoted replica needs a replica of its own before writes succeed.
      restartVictim: query.includes('wait_replicas'),
      log,
    });
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all(nodes.map((n) => n.close()));
    await cluster.stop();
  }
}

const rows: string[] = [];
for (const [label, query] of [
  ['no wait', ''],
  ['wait_replicas=1', '?wait_replicas=1'],
] as const) {
  for (let r = 0; r < repeat; r++) {
    log(`${label}, run ${r + 1} of ${repeat}`);
    const res = await once(query);
    const answers = [...res.statuses].map(([status, n]) => `${status}: ${n.toLocaleString('en-US')}`).join(', ');
    rows.push(
      `| ${label} | ${answers} | ${res.acknowledged.toLocaleString('en-US')} | ${res.lost} | ${Math.round(res.outageMs)} | ` +
        `${res.victimFailures.toLocaleString('en-US')} over ${Math.round(res.failureSpanMs)} ms | ${Math.round(res.slowestMs)} |`,
    );
    log(rows[rows.length - 1]);
  }
}
process.stdout.write(
  [
    `Failover of one master under ${writers} writers through 2 protokv nodes; cluster-node-timeout ${nodeTimeoutMs} ms; 3 masters + 3 replicas, no persistence, loopback.`,
    '',
    '| mode | answers | acknowledged writes | acknowledged, then lost | outage on the killed shard (ms, kill → first success) | failed writes on that shard | slowest request (ms) |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n'),
);
