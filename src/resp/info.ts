/**
 * INFO: Redis's sections and field names, filled with protokv's own figures. Fields that describe
 * Redis machinery protokv does not have (replication, RDB/AOF, eviction) report the state Redis
 * reports when that machinery is idle or off.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { RespContext } from './context.js';
import { REDIS_VERSION } from './commands/connection.js';

const DEFAULT_SECTIONS = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'modules', 'errorstats', 'cluster', 'keyspace'];
const ALL_SECTIONS = [...DEFAULT_SECTIONS.slice(0, -3), 'commandstats', 'errorstats', 'latencystats', 'cluster', 'keyspace'];
// Redis prints sections in this order whatever order they were asked in.
const ORDER = ['server', 'clients', 'memory', 'persistence', 'stats', 'replication', 'cpu', 'modules', 'commandstats', 'errorstats', 'latencystats', 'cluster', 'keyspace'];

/** Identifies this process run, as Redis's run_id does. */
const RUN_ID = randomBytes(20).toString('hex');
const REPL_ID = randomBytes(20).toString('hex');
let peakMemory = 0;

/** The INFO text for `requested` sections ([] for the default set). `tables` is the key count. */
export function generateInfo(server: RespContext, requested: string[], tables: number): string {
  const wanted = new Set<string>();
  if (requested.length === 0) for (const s of DEFAULT_SECTIONS) wanted.add(s);
  for (const r of requested) {
    if (r === 'default') for (const s of DEFAULT_SECTIONS) wanted.add(s);
    else if (r === 'all' || r === 'everything') for (const s of ALL_SECTIONS) wanted.add(s);
    else wanted.add(r);
  }
  const out: string[] = [];
  for (const name of ORDER) {
    if (!wanted.has(name)) continue;
    const section = SECTIONS[name](server, tables);
    out.push(`# ${TITLES[name]}\r\n${section.map(([k, v]) => `${k}:${v}\r\n`).join('')}`);
  }
  return out.join('\r\n');
}

type Fields = [string, string | number][];

const TITLES: Record<string, string> = {
  server: 'Server',
  clients: 'Clients',
  memory: 'Memory',
  persistence: 'Persistence',
  stats: 'Stats',
  replication: 'Replication',
  cpu: 'CPU',
  modules: 'Modules',
  commandstats: 'Commandstats',
  errorstats: 'Errorstats',
  latencystats: 'Latencystats',
  cluster: 'Cluster',
  keyspace: 'Keyspace',
};

function human(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  const units = ['K', 'M', 'G', 'T'];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)}${units[u]}`;
}

const SECTIONS: Record<string, (server: RespContext, tables: number) => Fields> = {
  server: (server) => {
    const uptime = Math.floor((Date.now() - server.startedAt) / 1000);
    return [
      ['redis_version', REDIS_VERSION],
      ['redis_git_sha1', '00000000'],
      ['redis_git_dirty', 0],
      ['redis_mode', 'standalone'],
      ['protokv_store', server.storeKind],
      ['os', `${os.type()} ${os.release()} ${os.machine()}`],
      ['arch_bits', process.arch.includes('64') ? 64 : 32],
      ['multiplexing_api', 'libuv'],
      ['process_id', process.pid],
      ['process_supervised', 'no'],
      ['run_id', RUN_ID],
      ['tcp_port', server.port],
      ['server_time_usec', Math.floor((performance.timeOrigin + performance.now()) * 1000)],
      ['uptime_in_seconds', uptime],
      ['uptime_in_days', Math.floor(uptime / 86400)],
      ['hz', 10],
      ['configured_hz', 10],
      ['executable', process.execPath],
      ['config_file', ''],
      ['io_threads_active', 0],
    ];
  },
  clients: (server) => [
    ['connected_clients', server.clients.size],
    ['cluster_connections', 0],
    ['maxclients', server.limits.maxConnections],
    ['client_recent_max_input_buffer', 0],
    ['client_recent_max_output_buffer', 0],
    ['blocked_clients', 0],
    ['tracking_clients', 0],
    ['clients_in_timeout_table', 0],
  ],
  memory: () => {
    const m = process.memoryUsage();
    const used = m.heapUsed + m.external;
    peakMemory = Math.max(peakMemory, used);
    const total = os.totalmem();
    return [
      ['used_memory', used],
      ['used_memory_human', human(used)],
      ['used_memory_rss', m.rss],
      ['used_memory_rss_human', human(m.rss)],
      ['used_memory_peak', peakMemory],
      ['used_memory_peak_human', human(peakMemory)],
      ['used_memory_peak_perc', `${((used / peakMemory) * 100).toFixed(2)}%`],
      ['used_memory_lua', 0],
      ['used_memory_scripts', 0],
      ['number_of_cached_scripts', 0],
      ['number_of_functions', 0],
      ['number_of_libraries', 0],
      ['total_system_memory', total],
      ['total_system_memory_human', human(total)],
      ['maxmemory', 0],
      ['maxmemory_human', '0B'],
      ['maxmemory_policy', 'noeviction'],
      ['mem_fragmentation_ratio', (m.rss / Math.max(used, 1)).toFixed(2)],
      ['mem_allocator', 'libc'],
      ['lazyfree_pending_objects', 0],
    ];
  },
  persistence: (server) => {
    const durable = server.storeKind !== 'memory';
    return [
      ['loading', 0],
      ['async_loading', 0],
      ['rdb_changes_since_last_save', 0],
      ['rdb_bgsave_in_progress', 0],
      ['rdb_last_save_time', Math.floor(server.startedAt / 1000)],
      ['rdb_last_bgsave_status', 'ok'],
      ['rdb_saves', 0],
      ['aof_enabled', durable ? 1 : 0],
      ['aof_rewrite_in_progress', 0],
      ['aof_rewrite_scheduled', 0],
      ['aof_last_write_status', 'ok'],
    ];
  },
  stats: (server) => {
    const s = server.stats;
    return [
      ['total_connections_received', s.connectionsReceived],
      ['total_commands_processed', s.commandsProcessed],
      ['instantaneous_ops_per_sec', s.opsPerSecond()],
      ['total_net_input_bytes', s.netInputBytes],
      ['total_net_output_bytes', s.netOutputBytes],
      ['rejected_connections', s.rejectedConnections],
      ['expired_keys', 0],
      ['evicted_keys', 0],
      ['evicted_clients', 0],
      ['pubsub_channels', server.service.pubsub.topicCount],
      ['pubsub_patterns', server.service.pubsub.patternCount],
      ['pubsubshard_channels', 0],
      ['total_error_replies', s.errorReplies],
      ['unexpected_error_replies', 0],
    ];
  },
  replication: () => [
    ['role', 'master'],
    ['connected_slaves', 0],
    ['master_failover_state', 'no-failover'],
    ['master_replid', REPL_ID],
    ['master_replid2', '0'.repeat(40)],
    ['master_repl_offset', 0],
    ['second_repl_offset', -1],
    ['repl_backlog_active', 0],
    ['repl_backlog_size', 1048576],
    ['repl_backlog_first_byte_offset', 0],
    ['repl_backlog_histlen', 0],
  ],
  cpu: () => {
    const cpu = process.cpuUsage();
    const sys = (cpu.system / 1e6).toFixed(6);
    const user = (cpu.user / 1e6).toFixed(6);
    return [
      ['used_cpu_sys', sys],
      ['used_cpu_user', user],
      ['used_cpu_sys_children', '0.000000'],
      ['used_cpu_user_children', '0.000000'],
      ['used_cpu_sys_main_thread', sys],
      ['used_cpu_user_main_thread', user],
    ];
  },
  modules: () => [],
  commandstats: (server) => {
    const out: Fields = [];
    for (const [name, c] of server.stats.commands) {
      if (c.calls === 0 && c.failed === 0 && c.rejected === 0) continue;
      const usec = Math.round(c.usec);
      const per = c.calls === 0 ? 0 : c.usec / c.calls;
      out.push([`cmdstat_${name}`, `calls=${c.calls},usec=${usec},usec_per_call=${per.toFixed(2)},rejected_calls=${c.rejected},failed_calls=${c.failed}`]);
    }
    return out;
  },
  errorstats: (server) => Array.from(server.stats.errors, ([code, count]): [string, string] => [`errorstat_${code}`, `count=${count}`]),
  latencystats: () => [],
  cluster: () => [['cluster_enabled', 0]],
  keyspace: (_server, tables) => (tables > 0 ? [['db0', `keys=${tables},expires=0,avg_ttl=0`]] : []),
};
