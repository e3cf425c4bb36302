/**
 * Real Redis servers for tests and benchmarks, on free loopback ports, each in its own temp
 * directory without persistence: a standalone `redis-server`, or a Redis Cluster of masters with
 * one replica each (3 + 3 by default) created with `redis-cli --cluster create`. Whoever starts
 * one stops it (`stop()` kills every process and removes the directories); processes still running
 * when the test process exits are killed too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { openSync, closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RedisStore } from '../../src/storage/redis.js';
import { RedisBroker } from '../../src/storage/redis-broker.js';
import { parseRedisUrl } from '../../src/storage/redis-url.js';
import { Service } from '../../src/service/service.js';
import type { ServerOptions } from '../../src/transport/server.js';
import { startServer, type Running } from './server.js';

const HOST = '127.0.0.1';
/** Redis Cluster nodes talk to each other on the client port + 10000. */
const BUS_OFFSET = 10_000;

/** Every redis-server started here and not yet stopped, killed when this process exits or is killed. */
const live = new Set<ChildProcess>();
const killAll = () => {
  for (const child of live) child.kill('SIGKILL');
};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  const onSignal = () => {
    // Someone else handles the signal (and stops the servers in order): leave it to them.
    if (process.listenerCount(signal) > 1) return;
    killAll();
    process.off(signal, onSignal);
    process.kill(process.pid, signal);
  };
  process.on(signal, onSignal);
}

/** Fails with a clear message when the Redis binaries are not installed. */
export function assertRedisInstalled(): void {
  for (const bin of ['redis-server', 'redis-cli']) {
    if (spawnSync(bin, ['--version']).status !== 0) {
      throw new Error(`${bin} is not installed; the Redis store tests need it (Debian: apt-get install redis-server redis-tools)`);
    }
  }
}

/** A port that was free a moment ago (and, with `bus`, whose cluster bus port was too). */
async function freePort(bus: boolean): Promise<number> {
  for (;;) {
    const port = await bindAndRelease(0);
    if (!bus) return port;
    if (port + BUS_OFFSET > 65_535) continue;
    if ((await bindAndRelease(port + BUS_OFFSET).catch(() => 0)) !== 0) return port;
  }
}

function bindAndRelease(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, HOST, () => {
      const bound = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}

/** TLS for a redis-server: it then listens for TLS only, and demands client certificates. */
export interface RedisTlsFiles {
  cert: string;
  key: string;
  ca: string;
  /** Client certificate and key the helper itself connects with. */
  clientCert: string;
  clientKey: string;
}

/** One redis-server process, on a port of its own that it keeps across restarts. */
export class RedisProcess {
  #child!: ChildProcess;
  #exited!: Promise<void>;

  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly args: string[],
    readonly tls: RedisTlsFiles | undefined,
  ) {}

  /** Starts redis-server in `dir` on a free port (retrying should another process take it first). */
  static async start(dir: string, args: string[], cluster: boolean, tls?: RedisTlsFiles): Promise<RedisProcess> {
    for (let attempt = 0; ; attempt++) {
      const node = new RedisProcess(await freePort(cluster), dir, args, tls);
      if (await node.#spawn()) return node;
      await node.kill();
      if (attempt >= 4) throw new Error(`redis-server did not start (see ${dir}/redis-${node.port}.log)`);
    }
  }

  /** The current process. */
  get child(): ChildProcess {
    return this.#child;
  }

  /** Starts the server again after it was killed: same port, directory and settings. */
  async restart(): Promise<void> {
    if (this.running) throw new Error(`redis-server on ${this.port} is still running`);
    if (!(await this.#spawn())) throw new Error(`redis-server did not restart (see ${this.dir}/redis-${this.port}.log)`);
  }

  async #spawn(): Promise<boolean> {
    const log = openSync(join(this.dir, `redis-${this.port}.log`), 'a');
    const tls = this.tls;
    const listen = tls
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'yes']
      : ['--port', String(this.port)];
    const child = spawn(
      'redis-server',
      [...listen, '--bind', HOST, '--dir', this.dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...this.args],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    this.#child = child;
    live.add(child);
    this.#exited = new Promise((resolve) =>
      child.once('exit', () => {
        live.delete(child);
        resolve();
      }),
    );
    return await this.#answers();
  }

  /** Whether the process still runs. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` (SIGKILL by default) and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.#exited;
  }

  /** Stops the process gracefully, forcing it after a few seconds. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const forced = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.#exited;
    clearTimeout(forced);
  }

  /** A short-lived connection that fails fast, for administrative commands. */
  connection(): Redis {
    const tls = this.tls && { ca: readFileSync(this.tls.ca), cert: readFileSync(this.tls.clientCert), key: readFileSync(this.tls.clientKey) };
    return new Redis({ host: HOST, port: this.port, tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: true, connectTimeout: 2000, commandTimeout: 5000 });
  }

  /** Runs one command on this node. */
  async call(...args: (string | number)[]): Promise<unknown> {
    const redis = this.connection();
    // connect() only says "Connection is closed."; the error event says why.
    let failure: unknown;
    redis.on('error', (err) => (failure ??= err));
    try {
      await redis.connect();
      return await redis.call(String(args[0]), ...args.slice(1));
    } catch (err) {
      throw failure ?? err;
    } finally {
      redis.disconnect();
    }
  }

  async #answers(): Promise<boolean> {
    for (let i = 0; i < 200; i++) {
      if (!this.running) return false;
      try {
        if ((await this.call('PING')) === 'PONG') return true;
      } catch (err) {
        if (/NOAUTH/.test(String(err))) return true; // up, with a password
        await sleep(25);
      }
    }
    return false;
  }
}

/** A standalone redis-server. */
export class RedisStandalone {
  private constructor(
    readonly node: RedisProcess,
    readonly dir: string,
  ) {}

  /** Starts redis-server with `args`; with `tls` it speaks TLS only (see {@link RedisTlsFiles}). */
  static async start(args: string[] = [], tls?: RedisTlsFiles): Promise<RedisStandalone> {
    assertRedisInstalled();
    const dir = await mkdtemp(join(tmpdir(), 'protokv-redis-'));
    try {
      return new RedisStandalone(await RedisProcess.start(dir, args, false, tls), dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get port(): number {
    return this.node.port;
  }

  /** The `store` setting that reaches this server. */
  url(query = ''): string {
    return `${this.node.tls ? 'rediss' : 'redis'}://${HOST}:${this.port}${query}`;
  }

  async stop(): Promise<void> {
    await this.node.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface ClusterOptions {
  /** Masters; each gets `replicas` replicas. Default 3. */
  masters?: number;
  /** Replicas per master. Default 1. */
  replicas?: number;
  /**
   * `cluster-node-timeout` in milliseconds: how long a silent master goes before its replica takes
   * over. Default 5000, generous so that a loaded test machine causes no spurious failovers.
   */
  nodeTimeoutMs?: number;
  /** More redis-server arguments for every node. */
  args?: string[];
  /** TLS for clients, the cluster bus and replication (see {@link RedisTlsFiles}). */
  tls?: RedisTlsFiles;
}

/** A node as `CLUSTER NODES` describes it. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** For a replica, the id of its master. */
  masterId: string | undefined;
  failed: boolean;
  /** Slot ranges served (masters), as [first, last] pairs. */
  slots: [number, number][];
}

/** A Redis Cluster on loopback. */
export class RedisCluster {
  private constructor(
    readonly nodes: RedisProcess[],
    readonly dir: string,
    /** Number of masters serving slots. */
    readonly masterCount: number,
  ) {}

  /**
   * Starts the nodes, joins them with `redis-cli --cluster create` and waits until every node
   * reports `cluster_state:ok` with every slot served.
   */
  static async start(options: ClusterOptions = {}): Promise<RedisCluster> {
    assertRedisInstalled();
    const masters = options.masters ?? 3;
    const replicas = options.replicas ?? 1;
    const dir = await mkdtemp(join(tmpdir(), 'protokv-redis-cluster-'));
    const nodes: RedisProcess[] = [];
    try {
      const args = [
        '--cluster-enabled', 'yes',
        '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 5000),
        // A shard that is down leaves the others serving.
        '--cluster-require-full-coverage', 'no',
        // Replicas sync at once instead of waiting for more replicas to share the transfer.
        '--repl-diskless-sync-delay', '0',
        // Nodes connect to each other as clients too, so they need a client certificate.
        ...(options.tls
          ? ['--tls-cluster', 'yes', '--tls-replication', 'yes', '--tls-client-cert-file', options.tls.clientCert, '--tls-client-key-file', options.tls.clientKey]
          : []),
        ...(options.args ?? []),
      ];
      for (let i = 0; i < masters * (1 + replicas); i++) {
        nodes.push(await RedisProcess.start(dir, [...args, '--cluster-config-file', `nodes-${i}.conf`], true, options.tls));
      }
      const cluster = new RedisCluster(nodes, dir, masters);
      const tls = options.tls;
      const cliTls = tls ? ['--tls', '--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : [];
      const create = spawnSync(
        'redis-cli',
        [...cliTls, '--cluster', 'create', ...nodes.map((n) => `${HOST}:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
        { encoding: 'utf8', timeout: 60_000 },
      );
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}\n${create.stderr}`);
      await cluster.waitHealthy();
      return cluster;
    } catch (err) {
      await Promise.all(nodes.map((n) => n.kill()));
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** `host:port,host:port,…` of every node. */
  get seeds(): string {
    return this.nodes.map((n) => `${HOST}:${n.port}`).join(',');
  }

  /** The `store` setting that reaches this cluster. */
  url(query = ''): string {
    return `${this.nodes[0].tls ? 'rediss' : 'redis'}-cluster://${this.seeds}${query}`;
  }

  node(port: number): RedisProcess {
    const node = this.nodes.find((n) => n.port === port);
    if (node === undefined) throw new Error(`no node on port ${port}`);
    return node;
  }

  /** The cluster as a running node sees it. */
  async describe(): Promise<ClusterNodeInfo[]> {
    let last: unknown;
    for (const node of this.nodes.filter((n) => n.running)) {
      try {
        return parseClusterNodes(String(await node.call('CLUSTER', 'NODES')));
      } catch (err) {
        last = err;
      }
    }
    throw new Error(`no node answers CLUSTER NODES: ${String(last)}`);
  }

  /** The master serving `slot`. */
  async masterOf(slot: number): Promise<ClusterNodeInfo> {
    const nodes = await this.describe();
    const master = nodes.find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (master === undefined) throw new Error(`no master serves slot ${slot}`);
    return master;
  }

  /**
   * Waits until every running node reports `cluster_state:ok` with all 16384 slots served by
   * masters that are up, the nodes agree on the masters, and every other running node is a
   * replica whose replication link is up.
   */
  async waitHealthy(timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let why = '';
    while (Date.now() < end) {
      why = await this.#unhealthy();
      if (why === '') return;
      await sleep(100);
    }
    throw new Error(`the Redis cluster did not become healthy within ${timeoutMs} ms: ${why}`);
  }

  async #unhealthy(): Promise<string> {
    const running = this.nodes.filter((n) => n.running);
    const views: string[] = [];
    for (const node of running) {
      let info: string;
      let nodes: ClusterNodeInfo[];
      try {
        info = String(await node.call('CLUSTER', 'INFO'));
        nodes = parseClusterNodes(String(await node.call('CLUSTER', 'NODES')));
      } catch (err) {
        return `node ${node.port}: ${String(err)}`;
      }
      if (!/cluster_state:ok/.test(info)) return `node ${node.port}: cluster_state is not ok`;
      if (!/cluster_slots_ok:16384/.test(info)) return `node ${node.port}: not every slot is ok`;
      const up = new Set(running.map((n) => n.port));
      const masters = nodes.filter((n) => n.role === 'master' && n.slots.length > 0);
      if (masters.some((m) => m.failed || !up.has(m.port))) return `node ${node.port}: a master serving slots is down`;
      if (masters.length !== this.masterCount) return `node ${node.port}: ${masters.length} masters serve slots`;
      const replicas = nodes.filter((n) => n.role === 'replica' && up.has(n.port));
      if (replicas.length !== running.length - this.masterCount) return `node ${node.port}: not every other node is a replica yet`;
      views.push(masters.map((m) => `${m.port}:${JSON.stringify(m.slots)}`).sort().join(' '));
      if (replicas.some((r) => r.port === node.port)) {
        const replication = String(await node.call('INFO', 'replication').catch(() => ''));
        if (!/master_link_status:up/.test(replication)) return `replica ${node.port}: replication link is not up`;
      }
    }
    if (new Set(views).size > 1) return 'nodes disagree on the masters';
    return '';
  }

  /** Stops every node and removes the directory. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Parses `CLUSTER NODES` output. */
export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id, address, flags, master, , , , , ...slotFields] = line.split(' ');
      const port = Number(/:(\d+)@/.exec(address)?.[1]);
      const flagList = flags.split(',');
      const slots: [number, number][] = [];
      for (const field of slotFields) {
        if (field.startsWith('[')) continue; // a slot being migrated
        const [a, b] = field.split('-').map(Number);
        slots.push([a, b ?? a]);
      }
      return {
        id,
        port,
        role: flagList.includes('master') ? 'master' : 'replica',
        masterId: master === '-' ? undefined : master,
        failed: flagList.includes('fail') || flagList.includes('fail?'),
        slots,
      } satisfies ClusterNodeInfo;
    });
}

/** A protokv node serving on loopback over a Redis store, with its broker. */
export interface RedisBackedNode extends Running {
  store: RedisStore;
}

/** Starts an in-process protokv node over the Redis store `url` names (a port the OS picks). */
export async function startRedisNode(url: string, options: Partial<ServerOptions> = {}): Promise<RedisBackedNode> {
  const store = await RedisStore.open(parseRedisUrl(url));
  try {
    const broker = await RedisBroker.start(store.engine);
    const service = new Service({ store, broker });
    return { ...(await startServer({ ...options, service })), store };
  } catch (err) {
    await store.close();
    throw err;
  }
}
