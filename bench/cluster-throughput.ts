/**
 * Throughput of protokv on a Redis Cluster next to the embedded stores, with `protokv bench`:
 * HSET and HGET, 50 connections, pipeline 1 and 16, against
 * - one protokv node with the persistent (LMDB) store, and with the memory store;
 * - one protokv node over a 3-master + 3-replica Redis Cluster (no persistence), and the same with
 *   `?wait_replicas=1` (HSET only);
 * - two protokv nodes over that cluster, each loaded by its own generator with 25 connections
 *   (the figure is the sum);
 * - one node over a cluster with `appendonly yes`, `appendfsync always` (every write on disk
 *   before it is acknowledged, as with LMDB).
 * Every cell runs `--repeat` times, interleaved; the median and the range are reported. The
 * benchmark table is one table, so on the cluster it lives on one master.
 *
 * `npm run bench:cluster [-- --seconds 4] [-- --repeat 3]`; markdown on stdout, progress on stderr.
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import { RedisCluster } from '../test/helpers/redis-cluster.js';
import { runCli, startServerProcess, type ServerProcess } from '../test/helpers/cli.js';
import { tempDir } from '../test/helpers/stores.js';

const { values: flags } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    repeat: { type: 'string', default: '3' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (flags.help === true) {
  process.stdout.write('usage: npm run bench:cluster [-- --seconds S] [-- --repeat N]\n');
  process.exit(0);
}
const SECONDS = Number(flags.seconds);
const REPEAT = Number(flags.repeat);
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Target {
  name: string;
  /** protokv node addresses; the load is split evenly over them. */
  nodes: ServerProcess[];
  writesOnly?: boolean;
}

interface Workload {
  command: 'hset' | 'hget';
  pipeline: number;
}

const WORKLOADS: Workload[] = [
  { command: 'hset', pipeline: 1 },
  { command: 'hset', pipeline: 16 },
  { command: 'hget', pipeline: 1 },
  { command: 'hget', pipeline: 16 },
];

/** Runs one cell: one generator per node, connections split, ops/s summed. */
async function cell(target: Target, w: Workload): Promise<number> {
  const connections = Math.floor(50 / target.nodes.length);
  const runs = await Promise.all(
    target.nodes.map((node) =>
      runCli(['bench', '--server', node.address, '--command', w.command, '-c', String(connections), '-P', String(w.pipeline), '-d', String(SECONDS), '--json']),
    ),
  );
  let total = 0;
  for (const run of runs) {
    if (run.code !== 0) throw new Error(`protokv bench failed: ${run.stderr}`);
    const report = JSON.parse(run.stdout.trim().split('\n').pop()!) as { opsPerSec: number; errors: number; errorResponses: number };
    if (report.errors > 0 || report.errorResponses > 0) throw new Error(`protokv bench saw errors: ${run.stdout}`);
    total += report.opsPerSec;
  }
  return total;
}

const stops: (() => Promise<unknown>)[] = [];
const targets: Target[] = [];
try {
  const data = await tempDir('protokv-bench-lmdb-');
  stops.push(() => data.remove());
  const lmdb = await startServerProcess(['--listen', '127.0.0.1:0', '--data-dir', data.dir]);
  const memory = await startServerProcess(['--listen', '127.0.0.1:0', '--memory']);
  stops.push(() => lmdb.stop(), () => memory.stop());
  targets.push({ name: 'embedded LMDB, 1 node', nodes: [lmdb] }, { name: 'memory, 1 node', nodes: [memory] });

  log('starting a Redis Cluster (3 masters + 3 replicas, no persistence)…');
  const cluster = await RedisCluster.start();
  stops.push(() => cluster.stop());
  const one = await startServerProcess(['--listen', '127.0.0.1:0', '--store', cluster.url('?prefix=one:')]);
  const twoA = await startServerProcess(['--listen', '127.0.0.1:0', '--store', cluster.url('?prefix=two:')]);
  const twoB = await startServerProcess(['--listen', '127.0.0.1:0', '--store', cluster.url('?prefix=two:')]);
  const waiting = await startServerProcess(['--listen', '127.0.0.1:0', '--store', cluster.url('?prefix=wait:&wait_replicas=1')]);
  stops.push(() => one.stop(), () => twoA.stop(), () => twoB.stop(), () => waiting.stop());
  targets.push(
    { name: 'Redis Cluster, 1 node', nodes: [one] },
    { name: 'Redis Cluster, 2 nodes', nodes: [twoA, twoB] },
    { name: 'Redis Cluster, 1 node, wait_replicas=1', nodes: [waiting], writesOnly: true },
  );

  log('starting a Redis Cluster with appendfsync always…');
  const durable = await RedisCluster.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  stops.push(() => durable.stop());
  const durableNode = await startServerProcess(['--listen', '127.0.0.1:0', '--store', durable.url()]);
  stops.push(() => durableNode.stop());
  targets.push({ name: 'Redis Cluster (appendfsync always), 1 node', nodes: [durableNode] });

  const results = new Map<string, number[]>();
  for (let r = 0; r < REPEAT; r++) {
    for (const w of WORKLOADS) {
      for (const target of targets) {
        if (target.writesOnly === true && w.command !== 'hset') continue;
        const ops = await cell(target, w);
        const key = `${target.name}|${w.command}|${w.pipeline}`;
        results.set(key, [...(results.get(key) ?? []), ops]);
        log(`run ${r + 1}/${REPEAT} ${w.command} P${w.pipeline} ${target.name}: ${Math.round(ops).toLocaleString('en-US')} ops/s`);
      }
    }
  }

  const fmt = (runs: number[] | undefined) => {
    if (runs === undefined) return '—';
    const sorted = [...runs].sort((a, b) => a - b);
    const k = (n: number) => `${Math.round(n / 1000)}k`;
    const median = sorted[Math.floor(sorted.length / 2)];
    return sorted.length === 1 ? k(median) : `${k(median)} (${k(sorted[0])}–${k(sorted[sorted.length - 1])})`;
  };
  const lines = [
    `protokv bench, 50 connections, ${SECONDS} s per run, median (range) of ${REPEAT} interleaved runs, ops/s.`,
    `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores shared by every process (Redis nodes, protokv nodes, load generators); Node ${process.version}.`,
    '',
    '| store | HSET P1 | HSET P16 | HGET P1 | HGET P16 |',
    '|---|---|---|---|---|',
    ...targets.map((t) => `| ${t.name} | ${WORKLOADS.map((w) => fmt(results.get(`${t.name}|${w.command}|${w.pipeline}`))).join(' | ')} |`),
    '',
  ];
  process.stdout.write(lines.join('\n'));
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
}
