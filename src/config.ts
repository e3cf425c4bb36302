/**
 * The server's configuration. One table, {@link SETTINGS}, names every setting with its type,
 * default, flag, environment variable, TOML key, description and limits; flag parsing,
 * environment and file lookup, validation, error messages and `protokv serve --help` are all
 * driven by it, so a setting added there is available everywhere at once.
 *
 * Each setting is taken from the first source that has it: flags, then environment variables,
 * then the TOML file named by `--config` or `PROTOKV_CONFIG`, then its default.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseToml, TomlError } from 'smol-toml';
import { isRedisUrl, parseRedisUrl, redactRedisUrl, RedisUrlError, type RedisTarget } from './storage/redis-url.js';

/** Log levels, most to least severe; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * When the persistent store acknowledges a write: `sync` once it is synced to disk, `periodic`
 * once it is committed, synced within `--sync-interval-ms` (see docs/operations.md, Durability).
 */
export const DURABILITY_MODES = ['sync', 'periodic'] as const;
export type DurabilityMode = (typeof DURABILITY_MODES)[number];

/** How connections carry streams: one stream per connection, or many over yamux. */
export const MUX_MODES = ['none', 'yamux'] as const;
export type MuxMode = (typeof MUX_MODES)[number];

/** The shapes a setting's value can take; each has one parser shared by flags, env and file. */
export type SettingKind = 'listen' | 'listenOrOff' | 'path' | 'boolean' | 'choice' | 'integer' | 'size' | 'origins' | 'store' | 'ratio' | 'url';

/** Wire encodings of OTLP over HTTP that protokv can export traces in. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** Where the data lives: the embedded persistent store, memory, or a Redis engine. */
export type StoreChoice =
  | { readonly kind: 'lmdb' }
  | { readonly kind: 'memory' }
  | { readonly kind: 'redis'; readonly target: RedisTarget };

/** One row of the settings table. */
export interface SettingSpec {
  readonly kind: SettingKind;
  /** Long flag name without the leading dashes. Booleans also get `--no-<flag>`. */
  readonly flag: string;
  readonly env: string;
  /** Dotted key in the TOML file (`tls.cert` is `cert` in a `[tls]` table); absent when the file cannot set it. */
  readonly toml?: string;
  readonly default?: string | number | boolean;
  /** What the value looks like in help text, e.g. `HOST:PORT`. */
  readonly placeholder?: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly group: 'general' | 'lmdb' | 'tls' | 'http' | 'tracing' | 'store' | 'limits';
  readonly description: string;
}

const KiB = 1024;
const MiB = 1024 * KiB;
/** Largest value Node accepts for buffer lengths and timers alike. */
const INT32_MAX = 2 ** 31 - 1;

/** Every setting of `protokv serve`, in the order help text lists them. */
export const SETTINGS = {
  config: {
    kind: 'path',
    flag: 'config',
    env: 'PROTOKV_CONFIG',
    placeholder: 'FILE',
    group: 'general',
    description: 'TOML file to read settings from',
  },
  listen: {
    kind: 'listen',
    flag: 'listen',
    env: 'PROTOKV_LISTEN',
    toml: 'listen',
    default: '127.0.0.1:9527',
    placeholder: 'HOST:PORT',
    group: 'general',
    description: 'Address to accept connections on; IPv6 in brackets, e.g. [::1]:9527; port 0 picks a free port',
  },
  resp: {
    kind: 'listenOrOff',
    flag: 'resp',
    env: 'PROTOKV_RESP',
    toml: 'resp.listen',
    default: 'off',
    placeholder: 'HOST:PORT|off',
    group: 'general',
    description:
      'Address of the RESP listener, which speaks the Redis protocol (redis-cli, Redis client libraries) ' +
      'to the same data; off disables it. Same TLS settings and loopback rule as --listen',
  },
  store: {
    kind: 'store',
    flag: 'store',
    env: 'PROTOKV_STORE',
    toml: 'store',
    default: 'lmdb',
    placeholder: 'STORE',
    group: 'general',
    description:
      'Where data lives: lmdb (persistent, in --data-dir), memory, redis://HOST:PORT (one Redis server) or ' +
      'redis-cluster://HOST:PORT,HOST:PORT,… (Redis Cluster seed nodes); rediss:// and rediss-cluster:// for TLS. ' +
      'Options: ?wait_replicas=N&timeout_ms=MS&prefix=P (see docs/scaling.md)',
  },
  dataDir: {
    kind: 'path',
    flag: 'data-dir',
    env: 'PROTOKV_DATA_DIR',
    toml: 'data_dir',
    default: './data',
    placeholder: 'DIR',
    group: 'general',
    description: 'Directory of the persistent store',
  },
  memory: {
    kind: 'boolean',
    flag: 'memory',
    env: 'PROTOKV_MEMORY',
    toml: 'memory',
    default: false,
    group: 'general',
    description: 'Keep data in memory only (lost on exit): short for --store memory',
  },
  insecure: {
    kind: 'boolean',
    flag: 'insecure',
    env: 'PROTOKV_INSECURE',
    toml: 'insecure',
    default: false,
    group: 'general',
    description: 'Allow plain TCP on a non-loopback address',
  },
  logLevel: {
    kind: 'choice',
    flag: 'log-level',
    env: 'PROTOKV_LOG_LEVEL',
    toml: 'log_level',
    default: 'info',
    choices: LOG_LEVELS,
    placeholder: 'LEVEL',
    group: 'general',
    description: `Least severe messages to log: ${LOG_LEVELS.join(', ')}`,
  },
  mux: {
    kind: 'choice',
    flag: 'mux',
    env: 'PROTOKV_MUX',
    toml: 'mux',
    default: 'none',
    choices: MUX_MODES,
    placeholder: 'MODE',
    group: 'general',
    description: `Stream multiplexing on each connection: ${MUX_MODES.join(', ')}`,
  },
  durability: {
    kind: 'choice',
    flag: 'durability',
    env: 'PROTOKV_DURABILITY',
    toml: 'lmdb.durability',
    default: 'sync',
    choices: DURABILITY_MODES,
    placeholder: 'MODE',
    group: 'lmdb',
    description:
      'When a write is acknowledged: sync, once it is synced to disk (it survives a power loss); periodic, once it is ' +
      'committed, synced in the background: a process crash loses nothing acknowledged, a power loss the writes ' +
      'acknowledged in the last --sync-interval-ms at most (see docs/operations.md)',
  },
  syncIntervalMs: {
    kind: 'integer',
    flag: 'sync-interval-ms',
    env: 'PROTOKV_SYNC_INTERVAL_MS',
    toml: 'lmdb.sync_interval_ms',
    default: 1000,
    min: 1,
    max: 3_600_000,
    placeholder: 'MS',
    group: 'lmdb',
    description:
      'With --durability periodic: the longest an acknowledged write goes without being synced to disk; when syncs fall ' +
      'that far behind, acknowledgements wait for them',
  },
  cacheSize: {
    kind: 'size',
    flag: 'cache-size',
    env: 'PROTOKV_CACHE_SIZE',
    toml: 'lmdb.cache_size',
    default: 64 * MiB,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    placeholder: 'BYTES',
    group: 'lmdb',
    description: 'Memory for decoded values of recently read keys, which are then read without going to LMDB; 0 turns the cache off',
  },
  tlsCert: {
    kind: 'path',
    flag: 'tls-cert',
    env: 'PROTOKV_TLS_CERT',
    toml: 'tls.cert',
    placeholder: 'FILE',
    group: 'tls',
    description: 'Server certificate (PEM); enables TLS, needs --tls-key',
  },
  tlsKey: {
    kind: 'path',
    flag: 'tls-key',
    env: 'PROTOKV_TLS_KEY',
    toml: 'tls.key',
    placeholder: 'FILE',
    group: 'tls',
    description: 'Private key of the server certificate (PEM)',
  },
  tlsClientCa: {
    kind: 'path',
    flag: 'tls-client-ca',
    env: 'PROTOKV_TLS_CLIENT_CA',
    toml: 'tls.client_ca',
    placeholder: 'FILE',
    group: 'tls',
    description: 'CA certificates (PEM); clients must present a certificate signed by one (mutual TLS)',
  },
  http: {
    kind: 'listenOrOff',
    flag: 'http',
    env: 'PROTOKV_HTTP',
    toml: 'http.listen',
    default: '127.0.0.1:9528',
    placeholder: 'HOST:PORT|off',
    group: 'http',
    description:
      'Address of the HTTP listener (/healthz, /readyz, /metrics, /ws and the web console at /); HTTPS with the TLS settings above; off disables it. ' +
      'Same loopback rule as --listen',
  },
  metrics: {
    kind: 'boolean',
    flag: 'metrics',
    env: 'PROTOKV_METRICS',
    toml: 'http.metrics',
    default: true,
    group: 'http',
    description: 'Keep Prometheus metrics and serve them at /metrics (off with --http off)',
  },
  httpAllowedOrigins: {
    kind: 'origins',
    flag: 'http-allowed-origins',
    env: 'PROTOKV_HTTP_ALLOWED_ORIGINS',
    toml: 'http.allowed_origins',
    placeholder: 'ORIGINS',
    group: 'http',
    description:
      "Web origins (scheme://host[:port], comma-separated; an array in the file) whose pages may open /ws, besides the console's own",
  },
  otlpEndpoint: {
    kind: 'url',
    flag: 'otlp-endpoint',
    env: 'PROTOKV_OTLP_ENDPOINT',
    toml: 'tracing.otlp_endpoint',
    placeholder: 'URL',
    group: 'tracing',
    description:
      'Export traces over OTLP/HTTP to this collector (/v1/traces is appended unless the path ends with it); ' +
      'else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; unset: tracing is off',
  },
  traceSample: {
    kind: 'ratio',
    flag: 'trace-sample',
    env: 'PROTOKV_TRACE_SAMPLE',
    toml: 'tracing.sample',
    default: 1,
    placeholder: 'RATIO',
    group: 'tracing',
    description: 'Fraction of requests traced, from 0 to 1; when unset, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG apply',
  },
  storeTlsCa: {
    kind: 'path',
    flag: 'store-tls-ca',
    env: 'PROTOKV_STORE_TLS_CA',
    toml: 'store_tls.ca',
    placeholder: 'FILE',
    group: 'store',
    description: "CA certificates (PEM) the rediss:// store's certificate must be signed by; default: the system CAs",
  },
  storeTlsCert: {
    kind: 'path',
    flag: 'store-tls-cert',
    env: 'PROTOKV_STORE_TLS_CERT',
    toml: 'store_tls.cert',
    placeholder: 'FILE',
    group: 'store',
    description: 'Client certificate (PEM) presented to a rediss:// store that demands one; needs --store-tls-key',
  },
  storeTlsKey: {
    kind: 'path',
    flag: 'store-tls-key',
    env: 'PROTOKV_STORE_TLS_KEY',
    toml: 'store_tls.key',
    placeholder: 'FILE',
    group: 'store',
    description: 'Private key of the store client certificate (PEM)',
  },
  maxFrameSize: {
    kind: 'size',
    flag: 'max-frame-size',
    env: 'PROTOKV_MAX_FRAME_SIZE',
    toml: 'limits.max_frame_size',
    default: 64 * MiB,
    min: KiB,
    max: INT32_MAX,
    placeholder: 'BYTES',
    group: 'limits',
    description: 'Largest frame, and largest inflated gzip payload, accepted; also the largest response (a larger one is a 413)',
  },
  maxConnections: {
    kind: 'integer',
    flag: 'max-connections',
    env: 'PROTOKV_MAX_CONNECTIONS',
    toml: 'limits.max_connections',
    default: 10_000,
    min: 1,
    max: INT32_MAX,
    placeholder: 'N',
    group: 'limits',
    description: 'Connections served at once; more are refused',
  },
  idleTimeoutMs: {
    kind: 'integer',
    flag: 'idle-timeout-ms',
    env: 'PROTOKV_IDLE_TIMEOUT_MS',
    toml: 'limits.idle_timeout_ms',
    default: 0,
    min: 0,
    max: INT32_MAX,
    placeholder: 'MS',
    group: 'limits',
    description: 'Close connections silent for this long, in milliseconds; 0 never does',
  },
  maxPendingResponses: {
    kind: 'integer',
    flag: 'max-pending-responses',
    env: 'PROTOKV_MAX_PENDING_RESPONSES',
    toml: 'limits.max_pending_responses',
    default: 1024,
    min: 1,
    max: INT32_MAX,
    placeholder: 'N',
    group: 'limits',
    description: 'Responses a connection (or yamux stream) may have outstanding before the server stops reading from it and executing its requests',
  },
  maxOutputBuffer: {
    kind: 'size',
    flag: 'max-output-buffer',
    env: 'PROTOKV_MAX_OUTPUT_BUFFER',
    toml: 'limits.max_output_buffer',
    default: 32 * MiB,
    min: 64 * KiB,
    max: Number.MAX_SAFE_INTEGER,
    placeholder: 'BYTES',
    group: 'limits',
    description:
      'Bytes of unsent responses a connection (or yamux stream) may have before the server stops reading from it and executing its requests until they drain',
  },
  inputBudget: {
    kind: 'size',
    flag: 'input-budget',
    env: 'PROTOKV_INPUT_BUDGET',
    toml: 'limits.input_budget',
    default: 256 * MiB,
    min: 64 * KiB,
    max: Number.MAX_SAFE_INTEGER,
    placeholder: 'BYTES',
    group: 'limits',
    description:
      'Bytes of partly received frames all connections together may hold; a frame that does not fit waits, unread, until it does',
  },
  frameTimeoutMs: {
    kind: 'integer',
    flag: 'frame-timeout-ms',
    env: 'PROTOKV_FRAME_TIMEOUT_MS',
    toml: 'limits.frame_timeout_ms',
    default: 10_000,
    min: 0,
    max: INT32_MAX,
    placeholder: 'MS',
    group: 'limits',
    description:
      'Close a connection whose frame is not complete this many milliseconds after its first byte, plus a second per MiB of the frame; 0 never does',
  },
  subscriberBacklogMessages: {
    kind: 'integer',
    flag: 'subscriber-backlog-messages',
    env: 'PROTOKV_SUBSCRIBER_BACKLOG_MESSAGES',
    toml: 'limits.subscriber_backlog_messages',
    default: 10_000,
    min: 1,
    max: INT32_MAX,
    placeholder: 'N',
    group: 'limits',
    description: 'Messages queued for a slow subscriber before it is dropped',
  },
  subscriberBacklogBytes: {
    kind: 'size',
    flag: 'subscriber-backlog-bytes',
    env: 'PROTOKV_SUBSCRIBER_BACKLOG_BYTES',
    toml: 'limits.subscriber_backlog_bytes',
    default: 64 * MiB,
    min: KiB,
    max: Number.MAX_SAFE_INTEGER,
    placeholder: 'BYTES',
    group: 'limits',
    description: 'Bytes queued for a slow subscriber before it is dropped',
  },
  maxKeysPerCommand: {
    kind: 'integer',
    flag: 'max-keys-per-command',
    env: 'PROTOKV_MAX_KEYS_PER_COMMAND',
    toml: 'limits.max_keys_per_command',
    default: 100_000,
    min: 1,
    max: INT32_MAX,
    placeholder: 'N',
    group: 'limits',
    description: 'Keys one multi-key command may name',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;

/** Where a setting's value came from. */
export type SettingSource = 'flag' | 'env' | 'file' | 'default';

/** A parsed listen address; `host` has no brackets, ready for `net.Server.listen`. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Certificate files for TLS; `clientCa` turns on mutual TLS. Paths are absolute. */
export interface TlsFiles {
  cert: string;
  key: string;
  clientCa?: string;
}

/** Certificate files for TLS to a `rediss://` store. Paths are absolute. */
export interface StoreTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Limits that keep one client from exhausting the server. */
export interface ServerLimits {
  maxFrameSize: number;
  maxConnections: number;
  /** 0: connections never time out. */
  idleTimeoutMs: number;
  maxPendingResponses: number;
  maxOutputBuffer: number;
  inputBudget: number;
  /** 0: frames may take any time. */
  frameTimeoutMs: number;
  subscriberBacklogMessages: number;
  subscriberBacklogBytes: number;
  maxKeysPerCommand: number;
}

/** The persistent store's settings (`--store lmdb`). */
export interface PersistenceConfig {
  durability: DurabilityMode;
  /** With `periodic` durability: the longest an acknowledged write goes unsynced. */
  syncIntervalMs: number;
  /** Bytes of the read cache; 0: no cache. */
  cacheBytes: number;
}

/** The HTTP listener's settings. */
export interface HttpConfig {
  /** Where it listens; absent when it is off. */
  listen?: ListenAddress;
  /** Whether metrics are kept and served at `/metrics`. */
  metrics: boolean;
  /** Origins (normalized, `scheme://host[:port]`) allowed to open `/ws` besides the console's own. */
  allowedOrigins: string[];
}

/** Where and how traces are exported; present only when tracing is on. */
export interface TracingConfig {
  /** The full OTLP/HTTP traces URL (`…/v1/traces`). */
  endpoint: string;
  protocol: OtlpProtocol;
  /** Fraction of requests traced, 0 to 1. */
  sampleRatio: number;
  /** `service.name` of the exported resource. */
  serviceName: string;
}

/** The validated configuration of `protokv serve`. */
export interface ServerConfig {
  listen: ListenAddress;
  /** The RESP (Redis protocol) listener's address; absent when it is off. */
  resp?: ListenAddress;
  /** Where data lives; `--memory` is short for `--store memory`. */
  store: StoreChoice;
  /** TLS files for a `rediss://` store. */
  storeTls?: StoreTlsFiles;
  /** Absolute path; used by the lmdb store only. */
  dataDir: string;
  /** Used by the lmdb store only. */
  persistence: PersistenceConfig;
  /** Whether the store is `memory`. */
  memory: boolean;
  /** Absent: plain TCP. */
  tls?: TlsFiles;
  insecure: boolean;
  logLevel: LogLevel;
  mux: MuxMode;
  http: HttpConfig;
  /** Absent when tracing is off. */
  tracing?: TracingConfig;
  limits: ServerLimits;
  /** The TOML file that was read, if any (absolute). */
  configFile?: string;
  /** Where each setting's value came from, for logging the effective configuration. */
  sources: Record<SettingName, SettingSource>;
}

/** What {@link loadConfig} reads. */
export interface ConfigInput {
  /** The arguments after `protokv serve`, without `--help` (the CLI handles that). */
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** Directory that relative paths from flags and environment are resolved against. Default: `process.cwd()`. */
  cwd?: string;
}

/** A configuration problem, worded for the person starting the server: it names the setting and where it came from. */
export class ConfigError extends Error {
  /** The setting at fault, when one is. */
  readonly setting: SettingName | undefined;

  constructor(message: string, options?: { setting?: SettingName; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.setting = options?.setting;
  }
}

/**
 * Reads flags, environment and the TOML file, validates every setting and returns the
 * configuration. Throws {@link ConfigError} on the first problem found. Also checks that the
 * TLS files can be read, so a typo fails at start rather than at the first connection.
 */
export async function loadConfig(input: ConfigInput): Promise<ServerConfig> {
  const cwd = input.cwd ?? process.cwd();
  const flags = parseFlags(input.argv);
  const env = readEnv(input.env);

  const configFrom = flags.get('config') ?? env.get('config');
  const configFile = configFrom ? (coerce('config', configFrom.raw, configFrom.label, cwd) as string) : undefined;
  const file = configFrom && configFile ? await readConfigFile(configFile, configFrom.label) : new Map<string, Found>();
  const fileDir = configFile ? path.dirname(configFile) : cwd;

  const values = {} as Record<SettingName, unknown>;
  const sources = {} as Record<SettingName, SettingSource>;
  const labels = {} as Record<SettingName, string>;
  for (const name of settingNames()) {
    const spec: SettingSpec = SETTINGS[name];
    const fromFile = spec.toml === undefined ? undefined : file.get(spec.toml);
    const found = flags.get(name) ?? env.get(name) ?? fromFile;
    if (found) {
      values[name] = coerce(name, found.raw, found.label, found.source === 'file' ? fileDir : cwd, found.source === 'file');
      sources[name] = found.source;
      labels[name] = found.label;
    } else {
      values[name] = spec.default === undefined ? undefined : coerce(name, spec.default, `the default of --${spec.flag}`, cwd);
      sources[name] = 'default';
      labels[name] = `--${spec.flag}`;
    }
  }

  let store = values.store as StoreChoice;
  if (values.memory === true) {
    if (sources.store === 'default') store = { kind: 'memory' };
    else if (store.kind !== 'memory') {
      throw new ConfigError(`${labels.memory} (short for --store memory) conflicts with ${labels.store} ${store.kind}`, {
        setting: 'memory',
      });
    }
  }

  const config: ServerConfig = {
    listen: values.listen as ListenAddress,
    store,
    dataDir: values.dataDir as string,
    persistence: {
      durability: values.durability as DurabilityMode,
      syncIntervalMs: values.syncIntervalMs as number,
      cacheBytes: values.cacheSize as number,
    },
    memory: store.kind === 'memory',
    insecure: values.insecure as boolean,
    logLevel: values.logLevel as LogLevel,
    mux: values.mux as MuxMode,
    http: {
      metrics: values.metrics as boolean,
      allowedOrigins: (values.httpAllowedOrigins as string[] | undefined) ?? [],
    },
    limits: {
      maxFrameSize: values.maxFrameSize as number,
      maxConnections: values.maxConnections as number,
      idleTimeoutMs: values.idleTimeoutMs as number,
      maxPendingResponses: values.maxPendingResponses as number,
      maxOutputBuffer: values.maxOutputBuffer as number,
      inputBudget: values.inputBudget as number,
      frameTimeoutMs: values.frameTimeoutMs as number,
      subscriberBacklogMessages: values.subscriberBacklogMessages as number,
      subscriberBacklogBytes: values.subscriberBacklogBytes as number,
      maxKeysPerCommand: values.maxKeysPerCommand as number,
    },
    sources,
  };
  if (configFile) config.configFile = configFile;
  const resp = values.resp as ListenAddress | undefined;
  if (resp !== undefined) config.resp = resp;
  const http = values.http as ListenAddress | undefined;
  if (http !== undefined) config.http.listen = http;
  const tracing = tracingConfig(values, sources, input.env);
  if (tracing !== undefined) config.tracing = tracing;

  const tlsCert = values.tlsCert as string | undefined;
  const tlsKey = values.tlsKey as string | undefined;
  const tlsClientCa = values.tlsClientCa as string | undefined;
  const requires = (present: SettingName, missing: SettingName[]) =>
    new ConfigError(
      `${labels[present]} requires ${missing.map((m) => labelLike(m, sources[present])).join(' and ')}`,
      { setting: present },
    );
  if (tlsKey !== undefined && tlsCert === undefined) throw requires('tlsKey', ['tlsCert']);
  if (tlsCert !== undefined && tlsKey === undefined) throw requires('tlsCert', ['tlsKey']);
  if (tlsClientCa !== undefined && tlsCert === undefined) throw requires('tlsClientCa', ['tlsCert', 'tlsKey']);
  if (tlsCert !== undefined && tlsKey !== undefined) {
    config.tls = { cert: tlsCert, key: tlsKey };
    if (tlsClientCa !== undefined) config.tls.clientCa = tlsClientCa;
  }

  const storeTls: StoreTlsFiles = {};
  for (const [name, field] of [['storeTlsCa', 'ca'], ['storeTlsCert', 'cert'], ['storeTlsKey', 'key']] as const) {
    const file = values[name] as string | undefined;
    if (file === undefined) continue;
    if (store.kind !== 'redis' || !store.target.tls) {
      throw new ConfigError(`${labels[name]} applies to a TLS store only: set ${labelLike('store', sources[name])} to rediss://… or rediss-cluster://…`, {
        setting: name,
      });
    }
    storeTls[field] = file;
  }
  if (storeTls.key !== undefined && storeTls.cert === undefined) throw requires('storeTlsKey', ['storeTlsCert']);
  if (storeTls.cert !== undefined && storeTls.key === undefined) throw requires('storeTlsCert', ['storeTlsKey']);
  if (Object.keys(storeTls).length > 0) config.storeTls = storeTls;

  for (const name of ['durability', 'syncIntervalMs', 'cacheSize'] as const) {
    if (sources[name] === 'default' || store.kind === 'lmdb') continue;
    throw new ConfigError(`${labels[name]} applies to the persistent store only (${labelLike('store', sources[name])} lmdb), not to ${store.kind}`, {
      setting: name,
    });
  }
  if (sources.syncIntervalMs !== 'default' && values.durability !== 'periodic') {
    throw new ConfigError(`${labels.syncIntervalMs} applies to ${labelLike('durability', sources.syncIntervalMs)} periodic only`, {
      setting: 'syncIntervalMs',
    });
  }

  // Every listener follows one rule: plaintext only on loopback, unless --insecure says otherwise.
  const listeners: [SettingName, ListenAddress | undefined, string][] = [
    ['listen', config.listen, 'TCP'],
    ['resp', config.resp, 'TCP'],
    ['http', config.http.listen, 'HTTP'],
  ];
  for (const [name, address, protocol] of listeners) {
    if (address === undefined || config.tls || config.insecure || isLoopbackHost(address.host)) continue;
    throw new ConfigError(
      `${labels[name]} ${formatListenAddress(address)} is not a loopback address: ` +
        `set --tls-cert and --tls-key to serve TLS there, or --insecure to serve plain, unencrypted ${protocol}`,
      { setting: name },
    );
  }

  for (const name of ['tlsCert', 'tlsKey', 'tlsClientCa', 'storeTlsCa', 'storeTlsCert', 'storeTlsKey'] as const) {
    const file = values[name] as string | undefined;
    if (file !== undefined) await assertReadableFile(file, `${labels[name]} file`, name);
  }
  return config;
}

/**
 * The help text of `protokv serve`, generated from {@link SETTINGS}: every flag with its
 * placeholder, description, default, environment variable and TOML key.
 */
export function renderServeHelp(): string {
  const lines = [
    'Usage: protokv serve [options]',
    '',
    'Runs the protokv server. Each setting comes from its flag, else its environment variable,',
    'else the TOML file named by --config, else its default. Relative paths in the file are',
    "resolved from the file's directory. Sizes accept suffixes: B, KiB, MiB, GiB, TiB (1024-based)",
    'and KB, MB, GB, TB (1000-based).',
  ];
  const groups: [SettingSpec['group'], string][] = [
    ['general', 'Options'],
    ['lmdb', 'Persistent store, --store lmdb (an [lmdb] table in the file)'],
    ['tls', 'TLS (a [tls] table in the file)'],
    ['http', 'HTTP listener: health, metrics, WebSocket, web console (an [http] table in the file)'],
    ['tracing', 'Tracing (a [tracing] table in the file)'],
    ['store', 'TLS to a rediss:// store (a [store_tls] table in the file)'],
    ['limits', 'Limits (a [limits] table in the file)'],
  ];
  const column = 36;
  // Each paragraph is a list of pieces that a line break may not split.
  const describe = (head: string, paragraphs: string[][]) => {
    const body = paragraphs.flatMap((pieces) => wrap(pieces, HELP_WIDTH - column));
    if (head.length + 2 <= column) lines.push(`${head.padEnd(column)}${body[0]}`);
    else lines.push(head, `${' '.repeat(column)}${body[0]}`);
    for (const line of body.slice(1)) lines.push(`${' '.repeat(column)}${line}`);
  };
  for (const [group, title] of groups) {
    lines.push('', `${title}:`);
    for (const name of settingNames()) {
      const spec: SettingSpec = SETTINGS[name];
      if (spec.group !== group) continue;
      const usage = spec.kind === 'boolean' ? `--[no-]${spec.flag}` : `--${spec.flag} ${spec.placeholder ?? 'VALUE'}`;
      const facts = [];
      if (spec.default !== undefined) facts.push(`default ${formatDefault(spec)}`);
      facts.push(`env ${spec.env}`);
      if (spec.toml !== undefined) facts.push(`toml ${spec.toml}`);
      const factPieces = facts.map((fact, i) => (i === 0 ? '(' : '') + fact + (i === facts.length - 1 ? ')' : ','));
      describe(`  ${usage}`, [spec.description.split(' '), factPieces]);
    }
  }
  lines.push('');
  describe('  -h, --help', [['Show', 'this', 'help']]);
  lines.push('');
  return lines.join('\n');
}

/**
 * Parses `HOST:PORT` (IPv6 as `[ADDR]:PORT`). Throws {@link ConfigError} naming what was expected.
 */
export function parseListenAddress(text: string): ListenAddress {
  return asConfigError(text, () => listenAddress(text));
}

/** Formats a listen address back to `HOST:PORT`, bracketing IPv6. */
export function formatListenAddress({ host, port }: ListenAddress): string {
  return `${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** Whether `host` names this machine's loopback interface: `localhost`, 127.0.0.0/8 or ::1. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (/^localhost\.?$/i.test(bare)) return true;
  if (isIPv4(bare)) return LOOPBACK.check(bare, 'ipv4');
  if (isIPv6(bare)) return LOOPBACK.check(bare, 'ipv6');
  return false;
}

/**
 * Parses a byte size: a whole number of bytes, or a number with a unit (`64MiB`, `1.5 GiB`,
 * `100KB`). Throws {@link ConfigError} when it is not one or is not a whole number of bytes.
 */
export function parseByteSize(text: string): number {
  return asConfigError(text, () => byteSize(text, 0, Number.MAX_SAFE_INTEGER));
}

/** Formats a byte count with the largest 1024-based unit that divides it exactly. */
export function formatByteSize(bytes: number): string {
  for (const [unit, factor] of BINARY_UNITS) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

// ---------------------------------------------------------------------------------------------

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

const BINARY_UNITS: [string, number][] = [
  ['TiB', 1024 ** 4],
  ['GiB', 1024 ** 3],
  ['MiB', 1024 ** 2],
  ['KiB', 1024],
];
const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['kib', 1024],
  ['mib', 1024 ** 2],
  ['gib', 1024 ** 3],
  ['tib', 1024 ** 4],
  ['kb', 1e3],
  ['mb', 1e6],
  ['gb', 1e9],
  ['tb', 1e12],
]);

interface Found {
  raw: unknown;
  source: Exclude<SettingSource, 'default'>;
  /** How the person wrote it: `--listen`, `PROTOKV_LISTEN`, `listen in /etc/protokv.toml`. */
  label: string;
}

/** Thrown by the value parsers: what a valid value looks like. Callers add which setting and source. */
class Expected extends Error {}

function settingNames(): SettingName[] {
  return Object.keys(SETTINGS) as SettingName[];
}

function asConfigError<T>(text: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof Expected) throw new ConfigError(`invalid value ${JSON.stringify(text)}: ${err.message}`);
    throw err;
  }
}

function parseFlags(argv: string[]): Map<SettingName, Found> {
  const byFlag = new Map<string, { name: SettingName; negated: boolean }>();
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const name of settingNames()) {
    const spec: SettingSpec = SETTINGS[name];
    const type = spec.kind === 'boolean' ? 'boolean' : 'string';
    options[spec.flag] = { type };
    byFlag.set(spec.flag, { name, negated: false });
    if (type === 'boolean') {
      options[`no-${spec.flag}`] = { type };
      byFlag.set(`no-${spec.flag}`, { name, negated: true });
    }
  }

  let tokens;
  try {
    ({ tokens } = parseArgs({ args: argv, options, strict: true, allowPositionals: false, tokens: true }));
  } catch (err) {
    throw flagError(err, Object.keys(options));
  }

  // Tokens keep the command-line order, so a later `--no-memory` overrides an earlier `--memory`.
  const found = new Map<SettingName, Found>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const entry = byFlag.get(token.name);
    if (!entry) continue;
    const raw = token.value ?? !entry.negated;
    found.set(entry.name, { raw, source: 'flag', label: token.rawName });
  }
  return found;
}

function flagError(err: unknown, known: string[]): ConfigError {
  const { code, message } = err as { code?: string; message?: string };
  const text = message ?? String(err);
  const quoted = /'([^']*)'/.exec(text)?.[1] ?? '';
  const option = quoted.split(' ')[0];
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new ConfigError(`unknown option ${option}${suggestion(option.replace(/^-+/, ''), known, '--')}`, {
        cause: err,
      });
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(text)) return new ConfigError(`${option} does not take a value`, { cause: err });
      if (/ambiguous/.test(text)) {
        const hint = `write ${option}=VALUE for a value that starts with "-"`;
        return new ConfigError(`${option} requires a value (${hint})`, { cause: err });
      }
      return new ConfigError(`${option} requires a value`, { cause: err });
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new ConfigError(`unexpected argument ${JSON.stringify(quoted)}: protokv serve takes only options`, { cause: err });
    default:
      return new ConfigError(`invalid arguments: ${text}`, { cause: err });
  }
}

function readEnv(env: NodeJS.ProcessEnv): Map<SettingName, Found> {
  const found = new Map<SettingName, Found>();
  for (const name of settingNames()) {
    const key = SETTINGS[name].env;
    const raw = env[key];
    // An empty variable is how shells and service managers usually unset one.
    if (raw !== undefined && raw !== '') found.set(name, { raw, source: 'env', label: key });
  }
  return found;
}

async function readConfigFile(file: string, from: string): Promise<Map<string, Found>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file} (from ${from}): ${fsReason(err)}`, { setting: 'config', cause: err });
  }

  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text, { unsafeKeyBehaviour: 'throw' });
  } catch (err) {
    if (err instanceof TomlError) {
      const what = err.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
      throw new ConfigError(
        `invalid TOML in ${file} at line ${err.line}, column ${err.column}: ${what}\n${err.codeblock}`.trimEnd(),
        { setting: 'config', cause: err },
      );
    }
    throw new ConfigError(`invalid TOML in ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  const byKey = new Map<string, SettingName>();
  for (const name of settingNames()) {
    const spec: SettingSpec = SETTINGS[name];
    if (spec.toml !== undefined) byKey.set(spec.toml, name);
  }
  const tables = new Set([...byKey.keys()].filter((k) => k.includes('.')).map((k) => k.split('.')[0]));
  const known = [...byKey.keys()];

  const found = new Map<string, Found>();
  const visit = (key: string, value: unknown) => {
    if (!byKey.has(key)) {
      throw new ConfigError(`unknown setting ${JSON.stringify(key)} in ${file}${suggestion(key, known, '')}`);
    }
    found.set(key, { raw: value, source: 'file', label: `${key} in ${file}` });
  };
  for (const [key, value] of Object.entries(doc)) {
    if (!tables.has(key)) {
      visit(key, value);
      continue;
    }
    if (!isTable(value)) {
      throw new ConfigError(`invalid value ${show(value)} for ${key} in ${file}: expected a [${key}] table`);
    }
    for (const [inner, innerValue] of Object.entries(value)) visit(`${key}.${inner}`, innerValue);
  }
  return found;
}

function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === null || proto === Object.prototype;
}

/**
 * Converts a raw value from any source into the setting's type, or throws a ConfigError naming
 * it. Flags and environment only have strings; the file has types, and a quoted number or
 * boolean there is more likely a mistake than a wish, so it is refused.
 */
function coerce(name: SettingName, raw: unknown, label: string, baseDir: string, typed = false): unknown {
  const spec: SettingSpec = SETTINGS[name];
  try {
    if (typed && spec.kind === 'boolean' && typeof raw !== 'boolean') throw new Expected('expected true or false (unquoted)');
    if (typed && spec.kind === 'ratio' && typeof raw !== 'number') throw new Expected('expected a number from 0 to 1 (unquoted)');
    if (typed && spec.kind === 'integer' && typeof raw !== 'number') {
      throw new Expected(`expected a whole number from ${spec.min ?? 0} to ${spec.max ?? Number.MAX_SAFE_INTEGER} (unquoted)`);
    }
    switch (spec.kind) {
      case 'listen':
        return listenAddress(requireString(raw, 'HOST:PORT'));
      case 'listenOrOff': {
        const text = requireString(raw, 'HOST:PORT or off');
        return text.toLowerCase() === 'off' ? undefined : listenAddress(text);
      }
      case 'url':
        return httpUrl(requireString(raw, 'an http:// or https:// URL'));
      case 'ratio':
        return ratioValue(raw);
      case 'path': {
        const text = requireString(raw, 'a path');
        if (text.includes('\0')) throw new Expected('expected a path');
        return path.resolve(baseDir, text);
      }
      case 'boolean':
        return booleanValue(raw);
      case 'choice': {
        const choices = spec.choices ?? [];
        const text = requireString(raw, `one of ${choices.join(', ')}`).toLowerCase();
        if (!choices.includes(text)) throw new Expected(`expected one of ${choices.join(', ')}`);
        return text;
      }
      case 'integer':
        return integerValue(raw, spec.min ?? 0, spec.max ?? Number.MAX_SAFE_INTEGER);
      case 'size':
        return sizeValue(raw, spec.min ?? 0, spec.max ?? Number.MAX_SAFE_INTEGER);
      case 'store':
        return storeChoice(requireString(raw, STORE_EXPECTED));
      case 'origins':
        return originList(raw);
    }
  } catch (err) {
    if (err instanceof Expected) {
      // A store address may hold a password: never echo it.
      const shown = spec.kind === 'store' && typeof raw === 'string' ? JSON.stringify(redactRedisUrl(raw)) : show(raw);
      throw new ConfigError(`invalid value ${shown} for ${label}: ${err.message}`, { setting: name });
    }
    throw err;
  }
}

function requireString(raw: unknown, expected: string): string {
  if (typeof raw !== 'string') throw new Expected(`expected ${expected} as a string`);
  if (raw.trim() === '') throw new Expected(`expected ${expected}`);
  return raw.trim();
}

const HOST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

function listenAddress(text: string): ListenAddress {
  const expected = 'expected HOST:PORT';
  let host: string;
  let port: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(text);
  if (bracketed) {
    [, host, port] = bracketed as unknown as [string, string, string];
    if (!isIPv6(host)) throw new Expected(`${expected} with an IPv6 address inside the brackets`);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new Expected(`${expected}, e.g. 127.0.0.1:9527`);
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(':')) throw new Expected(`${expected}; write IPv6 addresses in brackets, e.g. [::1]:9527`);
    if (host === '') throw new Expected(`${expected}; name the host, e.g. 0.0.0.0:9527 for every IPv4 interface`);
    if (!isIPv4(host)) {
      const labels = host.replace(/\.$/, '').split('.');
      const numeric = /^[\d.]+$/.test(host);
      if (numeric || host.length > 253 || !labels.every((l) => HOST_LABEL.test(l))) {
        throw new Expected(`${expected} with a valid host name or IP address`);
      }
    }
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw new Expected(`${expected} with a port from 0 to 65535`);
  return { host, port: Number(port) };
}

const STORE_EXPECTED = 'lmdb, memory, redis://HOST:PORT or redis-cluster://HOST:PORT,HOST:PORT,… (rediss:// for TLS)';

function storeChoice(text: string): StoreChoice {
  const lower = text.toLowerCase();
  if (lower === 'lmdb' || lower === 'memory') return { kind: lower };
  if (!isRedisUrl(text)) throw new Expected(`expected ${STORE_EXPECTED}`);
  try {
    return { kind: 'redis', target: parseRedisUrl(text) };
  } catch (err) {
    if (err instanceof RedisUrlError) throw new Expected(err.message);
    throw err;
  }
}

/**
 * A list of web origins: a comma-separated string (flags, environment) or an array of strings
 * (the file). Each must be exactly an origin as browsers send it in the `Origin` header.
 */
function originList(raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined;
  if (items === undefined) throw new Expected('expected a list of origins such as https://admin.example.com');
  const origins: string[] = [];
  for (const item of items) {
    if (typeof item !== 'string') throw new Expected(`expected origins as strings, got ${show(item)}`);
    const text = item.trim();
    if (text === '' && !Array.isArray(raw)) continue;
    const origin = normalizeOrigin(text);
    if (origin === undefined) {
      throw new Expected(`${JSON.stringify(text)} is not an origin: expected scheme://host[:port] with scheme http or https, no path`);
    }
    if (!origins.includes(origin)) origins.push(origin);
  }
  return origins;
}

/**
 * The origin `text` names, normalized as browsers serialize it (lower-case host, default port
 * dropped), or `undefined` when it is not an http(s) origin: a path, query, credentials or the
 * opaque origin `null` all make it something else.
 */
export function normalizeOrigin(text: string): string | undefined {
  if (!/^https?:\/\/[^/?#@]+\/?$/i.test(text)) return undefined;
  try {
    const url = new URL(text);
    return url.origin === 'null' ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

function httpUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Expected('expected an http:// or https:// URL, e.g. http://127.0.0.1:4318');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Expected('expected an http:// or https:// URL (OTLP over HTTP)');
  return url.href;
}

function ratioValue(raw: unknown): number {
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d*\.?\d+(?:e-?\d+)?\s*$/i.test(raw) ? Number(raw) : NaN;
  if (!(value >= 0 && value <= 1)) throw new Expected('expected a number from 0 to 1, e.g. 0.01 to trace one request in a hundred');
  return value;
}

/** The OTLP/HTTP path of the traces signal, appended to a base endpoint. */
const OTLP_TRACES_PATH = 'v1/traces';

/**
 * Tracing is on when an endpoint is set: protokv's own setting first, then the standard
 * OpenTelemetry variables (a `…_TRACES_ENDPOINT` is used as given, a base `…_ENDPOINT` gets
 * `/v1/traces`). The sampling ratio comes from `--trace-sample` when it was set, else from
 * `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`. Requests carry no trace context, so the
 * parent-based samplers behave as their root sampler.
 */
function tracingConfig(
  values: Record<SettingName, unknown>,
  sources: Record<SettingName, SettingSource>,
  env: NodeJS.ProcessEnv,
): TracingConfig | undefined {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const url = (name: string, text: string, join: boolean): string => {
    let href: string;
    try {
      href = httpUrl(text);
    } catch (err) {
      if (err instanceof Expected) throw new ConfigError(`invalid value ${JSON.stringify(text)} for ${name}: ${err.message}`, { setting: 'otlpEndpoint' });
      throw err;
    }
    return join ? tracesUrl(href) : href;
  };
  let endpoint: string | undefined;
  const own = values.otlpEndpoint as string | undefined;
  if (own !== undefined) endpoint = tracesUrl(own);
  else if (read('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') !== undefined) {
    endpoint = url('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', read('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')!, false);
  } else if (read('OTEL_EXPORTER_OTLP_ENDPOINT') !== undefined) {
    endpoint = url('OTEL_EXPORTER_OTLP_ENDPOINT', read('OTEL_EXPORTER_OTLP_ENDPOINT')!, true);
  }

  // Checked even when tracing is off, so a typo is found before someone relies on it.
  const protocolVariable = read('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocolText = read(protocolVariable) ?? 'http/protobuf';
  const protocol = OTLP_PROTOCOLS.find((p) => p === protocolText.toLowerCase());
  if (protocol === undefined) {
    throw new ConfigError(
      `invalid value ${JSON.stringify(protocolText)} for ${protocolVariable}: expected ${OTLP_PROTOCOLS.join(' or ')} (grpc is not supported)`,
      { setting: 'otlpEndpoint' },
    );
  }
  const sampleRatio = sources.traceSample === 'default' ? samplerRatio(read) ?? (values.traceSample as number) : (values.traceSample as number);
  if (endpoint === undefined) return undefined;
  return { endpoint, protocol, sampleRatio, serviceName: read('OTEL_SERVICE_NAME') ?? 'protokv' };
}

/** `…/v1/traces` under a base endpoint, unless the URL already names it. */
function tracesUrl(base: string): string {
  const url = new URL(base);
  if (!url.pathname.replace(/\/+$/, '').endsWith(`/${OTLP_TRACES_PATH}`)) {
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/${OTLP_TRACES_PATH}`;
  }
  return url.href;
}

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];

/** The ratio the standard sampler variables ask for, or `undefined` when they are unset. */
function samplerRatio(read: (name: string) => string | undefined): number | undefined {
  const sampler = read('OTEL_TRACES_SAMPLER')?.toLowerCase();
  if (sampler === undefined) return undefined;
  switch (sampler) {
    case 'always_on':
    case 'parentbased_always_on':
      return 1;
    case 'always_off':
    case 'parentbased_always_off':
      return 0;
    case 'traceidratio':
    case 'parentbased_traceidratio': {
      const arg = read('OTEL_TRACES_SAMPLER_ARG');
      if (arg === undefined) return 1;
      try {
        return ratioValue(arg);
      } catch (err) {
        if (err instanceof Expected) {
          throw new ConfigError(`invalid value ${JSON.stringify(arg)} for OTEL_TRACES_SAMPLER_ARG: ${err.message}`, { setting: 'traceSample' });
        }
        throw err;
      }
    }
    default:
      throw new ConfigError(`invalid value ${JSON.stringify(sampler)} for OTEL_TRACES_SAMPLER: expected one of ${SAMPLERS.join(', ')}`, {
        setting: 'traceSample',
      });
  }
}

function booleanValue(raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string') {
    const text = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(text)) return true;
    if (['false', '0', 'no', 'off'].includes(text)) return false;
  }
  throw new Expected('expected true or false');
}

function integerValue(raw: unknown, min: number, max: number): number {
  const expected = `expected a whole number from ${min} to ${max}`;
  let value: number;
  if (typeof raw === 'number') value = raw;
  else if (typeof raw === 'string' && /^\s*\d+\s*$/.test(raw)) value = Number(raw);
  else throw new Expected(expected);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new Expected(expected);
  return value;
}

function sizeValue(raw: unknown, min: number, max: number): number {
  const value = typeof raw === 'number' ? raw : typeof raw === 'string' ? byteSize(raw, min, max) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new Expected(sizeExpectation(min, max));
  return value;
}

function byteSize(text: string, min: number, max: number): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const factor = match ? SIZE_UNITS.get(match[2].toLowerCase()) : undefined;
  if (!match || factor === undefined) throw new Expected(sizeExpectation(min, max));
  const value = Number(match[1]) * factor;
  if (!Number.isSafeInteger(value)) throw new Expected(`${sizeExpectation(min, max)}; it must come to a whole number of bytes`);
  return value;
}

function sizeExpectation(min: number, max: number): string {
  const bound = (n: number) => {
    const text = formatByteSize(n);
    return /\d$/.test(text) ? `${text} bytes` : text;
  };
  return `expected a size from ${bound(min)} to ${bound(max)}, as a number of bytes or with a unit such as 64MiB`;
}

const HELP_WIDTH = 100;

/** Joins pieces with spaces into lines of at most `width` characters; a longer piece stays whole. */
function wrap(pieces: string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of pieces) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}

function formatDefault(spec: SettingSpec): string {
  if (spec.kind === 'size' && typeof spec.default === 'number') return formatByteSize(spec.default);
  return String(spec.default);
}

/** A setting's name in the same kind of source as `like`, for messages about pairs of settings. */
function labelLike(name: SettingName, like: SettingSource): string {
  const spec: SettingSpec = SETTINGS[name];
  if (like === 'env') return spec.env;
  if (like === 'file' && spec.toml !== undefined) return spec.toml;
  return `--${spec.flag}`;
}

function show(raw: unknown): string {
  if (typeof raw === 'string') return JSON.stringify(raw);
  if (typeof raw === 'number' || typeof raw === 'boolean' || typeof raw === 'bigint') return String(raw);
  if (raw instanceof Date) return raw.toISOString();
  if (Array.isArray(raw)) return 'an array';
  if (isTable(raw)) return 'a table';
  return String(raw);
}

async function assertReadableFile(file: string, label: string, setting: SettingName): Promise<void> {
  try {
    const info = await stat(file);
    if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
    // Opening proves read permission where stat alone would not.
    const handle = await open(file, 'r');
    await handle.close();
  } catch (err) {
    throw new ConfigError(`cannot read ${label} ${file}: ${fsReason(err)}`, { setting, cause: err });
  }
}

function fsReason(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
    case 'ENOTFILE':
      return 'not a file';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** ` (did you mean X?)` when one candidate is a likely typo of `word`, else nothing. */
function suggestion(word: string, candidates: string[], prefix: string): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const lower = word.toLowerCase();
    const lowerCandidate = candidate.toLowerCase();
    let distance = editDistance(lower, lowerCandidate);
    // A table setting written at the top level, or a name cut short, is as likely as a typo.
    if (candidate.split('.').pop() === word) distance = 0;
    else if (word.length >= 4 && lowerCandidate.startsWith(lower)) distance = Math.min(distance, 1);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.min(2, Math.floor(word.length / 3));
  return best !== undefined && bestDistance <= allowed ? ` (did you mean ${prefix}${best}?)` : '';
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length];
}
