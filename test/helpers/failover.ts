/**
 * A Redis Cluster failover under write load, as protokv clients see it: writers keep writing new
 * keys through protokv nodes while a master is killed with SIGKILL; every answer is recorded, then
 * every acknowledged write is read back. Shared by the failover test (which asserts behaviour) and
 * `bench/failover.ts` (which reports the figures).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { requests } from '../../src/protocol/requests.js';
import { fromValue } from '../../src/protocol/values.js';
import type { KvClient } from '../../src/client/client.js';
import type { RedisCluster } from './redis-cluster.js';

export interface FailoverOptions {
  cluster: RedisCluster;
  /** Clients of the protokv nodes under test; writers use them in turn. */
  clients: KvClient[];
  /** Concurrent writers, each waiting for its answer before its next write. */
  writers: number;
  /** Tables written to, in turn; they should span every master. */
  tables: string[];
  /** Load before the kill. */
  warmupMs: number;
  /** Load kept up after the victim's tables answer again. */
  afterRecoveryMs: number;
  /** Longest the run waits for the victim's tables to answer again. */
  recoveryTimeoutMs: number;
  /**
   * Restart the killed node once a replica has taken over (it rejoins as a replica): needed when
   * writes wait for a replica, since the promoted one has none of its own.
   */
  restartVictim: boolean;
  log?: (line: string) => void;
}

export interface FailoverResult {
  victimPort: number;
  /** Tables owned by the killed master. */
  victimTables: string[];
  /** Answers by status (200, 503, …) and other failures (client errors) by message. */
  statuses: Map<string, number>;
  acknowledged: number;
  /** Acknowledged writes missing or wrong when read back after the failover. */
  lost: number;
  /** Longest a single request took, in milliseconds. */
  slowestMs: number;
  /** From the kill to the first successful write on a victim table after it, in milliseconds. */
  outageMs: number;
  /** Writes to the victim's tables that failed, and the time from the first to the last failure. */
  victimFailures: number;
  failureSpanMs: number;
}

/** Runs the failover; throws only when the cluster or the run itself cannot proceed. */
export async function runFailover(options: FailoverOptions): Promise<FailoverResult> {
  const { cluster, clients, tables } = options;
  const log = options.log ?? (() => {});
  const victim = await masterOwningTables(cluster, tables);
  const victimTables = new Set(victim.tables);
  const statuses = new Map<string, number>();
  const acknowledged = new Map<string, bigint>();
  let slowestMs = 0;
  let killedAt = 0;
  let firstFailure = 0;
  let lastFailure = 0;
  let recoveredAt = 0;
  let victimFailures = 0;
  let running = true;

  const count = (label: string) => statuses.set(label, (statuses.get(label) ?? 0) + 1);
  const writer = async (w: number) => {
    const client = clients[w % clients.length];
    for (let seq = 0; running; seq++) {
      const table = tables[(w + seq) % tables.length];
      const key = `w${w}-${seq}`;
      const started = performance.now();
      let status: string;
      try {
        status = String((await client.send(requests.hset(table, key, BigInt(seq)))).status);
      } catch (err) {
        status = `error: ${(err as Error).message}`;
      }
      const now = performance.now();
      slowestMs = Math.max(slowestMs, now - started);
      count(status);
      if (status === '200') acknowledged.set(`${table}\0${key}`, BigInt(seq));
      if (killedAt === 0 || !victimTables.has(table)) continue;
      if (status === '200') {
        if (recoveredAt === 0 && started > killedAt && lastFailure > 0) recoveredAt = now;
      } else {
        victimFailures++;
        if (firstFailure === 0) firstFailure = now;
        lastFailure = now;
      }
      // A writer that just failed does not spin: the failure came fast, the next may too.
      if (status !== '200') await sleep(5);
    }
  };

  const load = Array.from({ length: options.writers }, (_, w) => writer(w));
  await sleep(options.warmupMs);
  log(`killing master ${victim.port} (tables ${victim.tables.join(', ')})`);
  killedAt = performance.now();
  await cluster.node(victim.port).kill('SIGKILL');
  let restarted = false;
  const deadline = killedAt + options.recoveryTimeoutMs;
  while (recoveredAt === 0 && performance.now() < deadline) {
    if (options.restartVictim && !restarted && (await failedOver(cluster, victim.port))) {
      log(`a replica took over after ${Math.round(performance.now() - killedAt)} ms; restarting ${victim.port} as a replica`);
      await cluster.node(victim.port).restart();
      restarted = true;
    }
    await sleep(50);
  }
  if (recoveredAt !== 0) await sleep(options.afterRecoveryMs);
  running = false;
  await Promise.all(load);
  if (options.restartVictim && !restarted) await cluster.node(victim.port).restart();
  log('waiting for the cluster to settle');
  await cluster.waitHealthy();

  let lost = 0;
  const reader = clients[0];
  for (const [id, value] of acknowledged) {
    const [table, key] = id.split('\0');
    const response = await reader.send(requests.hget(table, key));
    if (response.status !== 200 || fromValue(response.values[0]) !== value) lost++;
  }
  return {
    victimPort: victim.port,
    victimTables: victim.tables,
    statuses,
    acknowledged: acknowledged.size,
    lost,
    slowestMs,
    outageMs: recoveredAt === 0 ? Infinity : recoveredAt - killedAt,
    victimFailures,
    failureSpanMs: lastFailure - firstFailure,
  };
}

/** A master serving some of `tables`, and which ones. */
async function masterOwningTables(cluster: RedisCluster, tables: string[]): Promise<{ port: number; tables: string[] }> {
  const nodes = await cluster.describe();
  const byMaster = new Map<number, string[]>();
  const anyNode = cluster.nodes.find((n) => n.running)!;
  for (const table of tables) {
    // The hash tag is the same whatever the prefix: `{t:<table>}` (names here need no escaping).
    const slot = Number(await anyNode.call('CLUSTER', 'KEYSLOT', `{t:${table}}`));
    const master = nodes.find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (master === undefined) throw new Error(`no master serves slot ${slot}`);
    byMaster.set(master.port, [...(byMaster.get(master.port) ?? []), table]);
  }
  const [port, owned] = [...byMaster].sort((a, b) => b[1].length - a[1].length)[0];
  return { port, tables: owned };
}

/** Whether the master on `port` has been replaced: as many masters serve slots as before, none of them it. */
async function failedOver(cluster: RedisCluster, port: number): Promise<boolean> {
  try {
    const masters = (await cluster.describe()).filter((n) => n.role === 'master' && n.slots.length > 0 && !n.failed);
    return masters.length === cluster.masterCount && masters.every((m) => m.port !== port);
  } catch {
    return false;
  }
}
