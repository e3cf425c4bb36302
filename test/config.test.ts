import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ConfigError,
  SETTINGS,
  formatByteSize,
  formatListenAddress,
  isLoopbackHost,
  loadConfig,
  normalizeOrigin,
  parseByteSize,
  parseListenAddress,
  renderServeHelp,
  type ServerConfig,
  type SettingName,
  type SettingSpec,
  type SettingSource,
} from '../src/config.js';
import { parseRedisUrl } from '../src/storage/redis-url.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';

const MiB = 1024 * 1024;
const WHOLE = 'expected a whole number from 1 to 2147483647';
const FRAME_SIZE = 'expected a size from 1KiB to 2147483647 bytes, as a number of bytes or with a unit such as 64MiB';
const LEVELS = 'expected one of fatal, error, warn, info, debug, trace, silent';

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let dir: string;
let tls: TlsFixture;
let fileCount = 0;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'protokv-config-'));
  tls = await makeTlsFixture();
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
  await tls.cleanup();
});

/** Writes a TOML file in its own subdirectory and returns its path. */
async function tomlFile(text: string): Promise<string> {
  const sub = path.join(dir, `case-${++fileCount}`);
  await mkdir(sub);
  const file = path.join(sub, 'protokv.toml');
  await writeFile(file, text);
  return file;
}

function load(argv: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ServerConfig> {
  return loadConfig({ argv, env, cwd: dir });
}

/** Expects loading to fail with a ConfigError whose message matches. */
async function refused(argv: string[], env: NodeJS.ProcessEnv, message: RegExp | string): Promise<ConfigError> {
  let caught: unknown;
  try {
    await load(argv, env);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  if (typeof message === 'string') assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

const names = Object.keys(SETTINGS) as SettingName[];
const spec = (name: SettingName): SettingSpec => SETTINGS[name];

/** One non-default value for every setting a file can hold, as text and as the loaded result. */
interface Sample {
  text: string;
  /** The value as a TOML literal. */
  toml: string;
  expected: (baseDir: string) => unknown;
}

/**
 * Settings sampled all at once; `memory` and the persistent store's settings are left out, since
 * they conflict with a Redis `store` (durability.test.ts covers the latter).
 */
type SampledSetting = Exclude<SettingName, 'config' | 'memory' | 'durability' | 'syncIntervalMs' | 'cacheSize'>;

function samples(): Record<SampledSetting, Sample> {
  const str = (text: string, expected: (baseDir: string) => unknown): Sample => ({
    text,
    toml: JSON.stringify(text),
    expected,
  });
  const num = (n: number): Sample => ({ text: String(n), toml: String(n), expected: () => n });
  return {
    listen: str('[::1]:7001', () => ({ host: '::1', port: 7001 })),
    resp: str('127.0.0.1:7002', () => ({ host: '127.0.0.1', port: 7002 })),
    store: str('rediss-cluster://kv:pw@10.0.0.1:7000,10.0.0.2:7000?wait_replicas=1', () => ({
      kind: 'redis',
      target: parseRedisUrl('rediss-cluster://kv:pw@10.0.0.1:7000,10.0.0.2:7000?wait_replicas=1'),
    })),
    dataDir: str('store', (base) => path.join(base, 'store')),
    insecure: { text: 'true', toml: 'true', expected: () => true },
    logLevel: str('debug', () => 'debug'),
    mux: str('yamux', () => 'yamux'),
    tlsCert: str(tls.files.server, () => tls.files.server),
    tlsKey: str(tls.files.serverKey, () => tls.files.serverKey),
    tlsClientCa: str(tls.files.ca, () => tls.files.ca),
    storeTlsCa: str(tls.files.ca, () => tls.files.ca),
    storeTlsCert: str(tls.files.client, () => tls.files.client),
    storeTlsKey: str(tls.files.clientKey, () => tls.files.clientKey),
    httpAllowedOrigins: {
      text: 'https://Admin.Example.com:443,http://localhost:8080',
      toml: '["https://Admin.Example.com:443", "http://localhost:8080"]',
      expected: () => ['https://admin.example.com', 'http://localhost:8080'],
    },
    maxFrameSize: str('2MiB', () => 2 * MiB),
    maxConnections: num(50),
    idleTimeoutMs: num(30_000),
    maxPendingResponses: num(8),
    maxOutputBuffer: str('4MiB', () => 4 * MiB),
    inputBudget: str('96MiB', () => 96 * MiB),
    frameTimeoutMs: num(5000),
    subscriberBacklogMessages: num(100),
    subscriberBacklogBytes: str('1536KiB', () => 1536 * 1024),
    maxKeysPerCommand: num(500),
    http: str('127.0.0.1:9600', () => ({ host: '127.0.0.1', port: 9600 })),
    metrics: { text: 'true', toml: 'true', expected: () => true },
    otlpEndpoint: str('http://127.0.0.1:4318', () => 'http://127.0.0.1:4318/v1/traces'),
    traceSample: { text: '0.25', toml: '0.25', expected: () => 0.25 },
  };
}

/** The loaded value of a setting, found where ServerConfig keeps it. */
function valueOf(config: ServerConfig, name: SampledSetting): unknown {
  switch (name) {
    case 'storeTlsCa':
      return config.storeTls?.ca;
    case 'storeTlsCert':
      return config.storeTls?.cert;
    case 'storeTlsKey':
      return config.storeTls?.key;
    case 'tlsCert':
      return config.tls?.cert;
    case 'tlsKey':
      return config.tls?.key;
    case 'tlsClientCa':
      return config.tls?.clientCa;
    case 'otlpEndpoint':
      return config.tracing?.endpoint;
    case 'traceSample':
      return config.tracing?.sampleRatio;
    case 'httpAllowedOrigins':
      return config.http.allowedOrigins;
    case 'http':
      return config.http.listen;
    case 'metrics':
      return config.http.metrics;
    case 'listen':
    case 'resp':
    case 'store':
    case 'dataDir':
    case 'insecure':
    case 'logLevel':
    case 'mux':
      return config[name];
    default:
      return config.limits[name];
  }
}

function assertAllFrom(config: ServerConfig, source: SettingSource, base: string): void {
  for (const [name, sample] of Object.entries(samples()) as [SampledSetting, Sample][]) {
    assert.deepEqual(valueOf(config, name), sample.expected(base), name);
    assert.equal(config.sources[name], source, name);
  }
}

function tomlFor(values: Partial<Record<SettingName, string>>): string {
  const top: string[] = [];
  const tables = new Map<string, string[]>();
  for (const [name, literal] of Object.entries(values) as [SettingName, string][]) {
    const key = spec(name).toml;
    assert.ok(key !== undefined, name);
    const [table, inner] = key.includes('.') ? key.split('.') : [undefined, key];
    if (table === undefined) top.push(`${inner} = ${literal}`);
    else tables.set(table, [...(tables.get(table) ?? []), `${inner} = ${literal}`]);
  }
  return [...top, ...[...tables].flatMap(([table, lines]) => [`[${table}]`, ...lines])].join('\n') + '\n';
}

describe('defaults', () => {
  test('no flags, environment or file gives the documented defaults', async () => {
    const config = await load();
    assert.deepEqual(config, {
      listen: { host: '127.0.0.1', port: 9527 },
      store: { kind: 'lmdb' },
      dataDir: path.join(dir, 'data'),
      persistence: { durability: 'sync', syncIntervalMs: 1000, cacheBytes: 64 * MiB },
      memory: false,
      insecure: false,
      logLevel: 'info',
      mux: 'none',
      http: { listen: { host: '127.0.0.1', port: 9528 }, metrics: true, allowedOrigins: [] },
      limits: {
        maxFrameSize: 64 * MiB,
        maxConnections: 10_000,
        idleTimeoutMs: 0,
        maxPendingResponses: 1024,
        maxOutputBuffer: 32 * MiB,
        inputBudget: 256 * MiB,
        frameTimeoutMs: 10_000,
        subscriberBacklogMessages: 10_000,
        subscriberBacklogBytes: 64 * MiB,
        maxKeysPerCommand: 100_000,
      },
      sources: Object.fromEntries(names.map((n) => [n, 'default'])),
    });
  });

  test('the relative default data directory is resolved against the working directory', async () => {
    const config = await loadConfig({ argv: [], env: {}, cwd: '/srv/kv' });
    assert.equal(config.dataDir, '/srv/kv/data');
  });

  test('process environment is not consulted implicitly', async () => {
    const config = await loadConfig({ argv: [], env: {}, cwd: dir });
    assert.equal(config.listen.port, 9527);
  });
});

describe('sources', () => {
  test('every setting can be given as a flag', async () => {
    const argv = Object.entries(samples()).flatMap(([name, s]) => {
      const flag = `--${spec(name as SettingName).flag}`;
      return spec(name as SettingName).kind === 'boolean' ? [flag] : [flag, s.text];
    });
    assertAllFrom(await load(argv), 'flag', dir);
  });

  test('every setting can be given in the environment', async () => {
    const env = Object.fromEntries(Object.entries(samples()).map(([name, s]) => [spec(name as SettingName).env, s.text]));
    assertAllFrom(await load([], env), 'env', dir);
  });

  test('every setting can be given in the TOML file, relative paths from its directory', async () => {
    const literals = Object.fromEntries(Object.entries(samples()).map(([name, s]) => [name, s.toml]));
    const file = await tomlFile(tomlFor(literals));
    const config = await load(['--config', file]);
    assertAllFrom(config, 'file', path.dirname(file));
    assert.equal(config.configFile, file);
    assert.equal(config.sources.config, 'flag');
  });

  test('PROTOKV_CONFIG names the file when --config does not', async () => {
    const file = await tomlFile('log_level = "warn"\n');
    const config = await load([], { PROTOKV_CONFIG: file });
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.configFile, file);
  });

  test('a relative --config is resolved against the working directory', async () => {
    const file = await tomlFile('mux = "yamux"\n');
    const config = await load(['--config', path.relative(dir, file)]);
    assert.equal(config.mux, 'yamux');
    assert.equal(config.configFile, file);
  });

  test('flag values may be attached with =', async () => {
    const config = await load(['--listen=localhost:0', '--max-frame-size=1KiB']);
    assert.deepEqual(config.listen, { host: 'localhost', port: 0 });
    assert.equal(config.limits.maxFrameSize, 1024);
  });

  test('boolean environment values accept the usual spellings', async () => {
    const memory = async (text: string) => (await load([], { PROTOKV_MEMORY: text })).memory;
    for (const yes of ['true', 'TRUE', '1', 'yes', 'on']) assert.equal(await memory(yes), true, yes);
    for (const no of ['false', '0', 'no', 'off', 'Off']) assert.equal(await memory(no), false, no);
  });

  test('an empty environment variable counts as unset', async () => {
    const config = await load([], { PROTOKV_LISTEN: '', PROTOKV_LOG_LEVEL: '' });
    assert.equal(config.sources.listen, 'default');
    assert.equal(config.logLevel, 'info');
  });

  test('choices are case-insensitive', async () => {
    const config = await load(['--log-level', 'DEBUG', '--mux', 'Yamux']);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.mux, 'yamux');
  });

  test('unrelated PROTOKV_ variables are ignored', async () => {
    const config = await load([], { PROTOKV_ADDRESS: 'elsewhere:1', PATH: '/bin' });
    assert.equal(config.sources.listen, 'default');
  });
});

describe('precedence', () => {
  test('flags beat environment, environment beats the file, the file beats defaults', async () => {
    const file = await tomlFile(tomlFor({ listen: '"127.0.0.1:1111"', logLevel: '"warn"', maxConnections: '5' }));
    const config = await load(['--config', file, '--listen', '127.0.0.1:3333'], {
      PROTOKV_LISTEN: '127.0.0.1:2222',
      PROTOKV_LOG_LEVEL: 'error',
    });
    assert.equal(config.listen.port, 3333);
    assert.equal(config.logLevel, 'error');
    assert.equal(config.limits.maxConnections, 5);
    assert.equal(config.mux, 'none');
    assert.deepEqual(
      [config.sources.listen, config.sources.logLevel, config.sources.maxConnections, config.sources.mux],
      ['flag', 'env', 'file', 'default'],
    );
  });

  test('--config beats PROTOKV_CONFIG', async () => {
    const fromFlag = await tomlFile('log_level = "trace"\n');
    const fromEnv = await tomlFile('log_level = "fatal"\n');
    const config = await load(['--config', fromFlag], { PROTOKV_CONFIG: fromEnv });
    assert.equal(config.logLevel, 'trace');
    assert.equal(config.configFile, fromFlag);
  });

  test('--no-<flag> turns a boolean off over the environment and the file', async () => {
    const file = await tomlFile('memory = true\n');
    const config = await load(['--config', file, '--no-memory'], { PROTOKV_MEMORY: 'true' });
    assert.equal(config.memory, false);
    assert.equal(config.sources.memory, 'flag');
  });

  test('the last of repeated flags wins', async () => {
    assert.equal((await load(['--memory', '--no-memory'])).memory, false);
    assert.equal((await load(['--no-memory', '--memory'])).memory, true);
    assert.equal((await load(['--listen', '127.0.0.1:1', '--listen', '127.0.0.1:2'])).listen.port, 2);
  });

  test('a flag path is relative to the working directory even when the file sets the same setting', async () => {
    const file = await tomlFile('data_dir = "from-file"\n');
    assert.equal((await load(['--config', file])).dataDir, path.join(path.dirname(file), 'from-file'));
    assert.equal((await load(['--config', file, '--data-dir', 'from-flag'])).dataDir, path.join(dir, 'from-flag'));
  });
});

describe('bad flags', () => {
  test('an unknown option is named', async () => {
    await refused(['--fooo'], {}, 'unknown option --fooo');
    await refused(['-x'], {}, 'unknown option -x');
  });

  test('a near miss gets a suggestion', async () => {
    await refused(['--lsten', '127.0.0.1:1'], {}, 'unknown option --lsten (did you mean --listen?)');
    await refused(['--max-frame-sise', '1'], {}, /did you mean --max-frame-size\?/);
  });

  test('a missing value is named', async () => {
    await refused(['--listen'], {}, '--listen requires a value');
    await refused(['--listen', '--memory'], {}, /^--listen requires a value \(write --listen=VALUE for a value that starts with "-"\)$/);
  });

  test('a value for a boolean flag is refused', async () => {
    await refused(['--memory=yes'], {}, '--memory does not take a value');
  });

  test('positional arguments are refused', async () => {
    await refused(['now'], {}, 'unexpected argument "now": protokv serve takes only options');
  });
});

describe('bad values', () => {
  const listenCases: [string, RegExp][] = [
    ['abc', /expected HOST:PORT, e\.g\. 127\.0\.0\.1:9527$/],
    ['127.0.0.1', /expected HOST:PORT/],
    ['127.0.0.1:65536', /port from 0 to 65535/],
    ['127.0.0.1:-1', /port from 0 to 65535/],
    ['127.0.0.1:http', /port from 0 to 65535/],
    ['127.0.0.1:', /port from 0 to 65535/],
    ['::1:9527', /write IPv6 addresses in brackets, e\.g\. \[::1\]:9527/],
    ['[localhost]:9527', /IPv6 address inside the brackets/],
    [':9527', /name the host/],
    ['bad_host:1', /valid host name or IP address/],
    ['999.1.1.1:1', /valid host name or IP address/],
    ['-lead.example:1', /valid host name or IP address/],
  ];

  test('bad listen addresses say what is expected, naming the flag', async () => {
    for (const [text, why] of listenCases) {
      const err = await refused([`--listen=${text}`], {}, new RegExp(`^invalid value ${escapeRegExp(JSON.stringify(text))} for --listen: `));
      assert.match(err.message, why, text);
      assert.equal(err.setting, 'listen');
    }
    await refused(['--listen='], {}, 'invalid value "" for --listen: expected HOST:PORT');
  });

  test('bad values name the environment variable they came from', async () => {
    await refused([], { PROTOKV_LISTEN: 'abc' }, /^invalid value "abc" for PROTOKV_LISTEN: expected HOST:PORT/);
    await refused([], { PROTOKV_MEMORY: 'maybe' }, 'invalid value "maybe" for PROTOKV_MEMORY: expected true or false');
    await refused([], { PROTOKV_MAX_CONNECTIONS: 'lots' }, `invalid value "lots" for PROTOKV_MAX_CONNECTIONS: ${WHOLE}`);
  });

  test('bad choices list the choices', async () => {
    await refused(['--log-level', 'loud'], {}, `invalid value "loud" for --log-level: ${LEVELS}`);
    await refused(['--mux', 'spdy'], {}, 'invalid value "spdy" for --mux: expected one of none, yamux');
  });

  test('integers must be whole and in range', async () => {
    for (const text of ['-1', '1.5', '1e3', 'abc', '0', '2147483648']) {
      await refused([`--max-connections=${text}`], {}, `invalid value ${JSON.stringify(text)} for --max-connections: ${WHOLE}`);
    }
    assert.equal((await load(['--idle-timeout-ms', '0'])).limits.idleTimeoutMs, 0);
    await refused(['--idle-timeout-ms', '2147483648'], {}, /--idle-timeout-ms: expected a whole number from 0 to 2147483647/);
  });

  test('sizes must be in range and come to whole bytes', async () => {
    await refused(['--max-frame-size', '1023'], {}, `invalid value "1023" for --max-frame-size: ${FRAME_SIZE}`);
    await refused(['--max-frame-size', '2GiB'], {}, /expected a size from 1KiB to 2147483647 bytes/);
    await refused(['--max-frame-size', '64XB'], {}, /expected a size/);
    await refused(['--max-frame-size', '0.3KiB'], {}, /whole number of bytes/);
    await refused(['--max-frame-size=-5KiB'], {}, /expected a size/);
    assert.equal((await load(['--max-frame-size', String(2 ** 31 - 1)])).limits.maxFrameSize, 2 ** 31 - 1);
    assert.equal((await load(['--max-frame-size', '1KiB'])).limits.maxFrameSize, 1024);
  });

  test('allowed origins must be bare http(s) origins, named with the bad item', async () => {
    for (const text of ['example.com', 'https://example.com/console', 'ftp://example.com', 'null', '*', 'https://u:p@example.com', 'https://x.com?q']) {
      await refused(
        ['--http-allowed-origins', `https://ok.example,${text}`],
        {},
        new RegExp(`^invalid value .* for --http-allowed-origins: ${escapeRegExp(JSON.stringify(text))} is not an origin`),
      );
    }
    const file = await tomlFile('[http]\nallowed_origins = [1]\n');
    await refused(['--config', file], {}, /allowed_origins in .*: expected origins as strings, got 1/);
  });

  test('allowed origins are normalized as browsers send them, duplicates dropped', async () => {
    const config = await load([], { PROTOKV_HTTP_ALLOWED_ORIGINS: ' HTTPS://A.example:443/ , http://[::1]:80,https://a.example,' });
    assert.deepEqual(config.http.allowedOrigins, ['https://a.example', 'http://[::1]']);
    assert.equal(normalizeOrigin('http://localhost:9528'), 'http://localhost:9528');
    assert.equal(normalizeOrigin('http://localhost:9528/ws'), undefined);
  });

  test('empty paths are refused', async () => {
    await refused(['--data-dir='], {}, 'invalid value "" for --data-dir: expected a path');
  });
});

describe('the TOML file', () => {
  test('a syntax error names the file, line and column', async () => {
    const file = await tomlFile('listen = "127.0.0.1:1"\nlog_level = = "info"\n');
    const err = await refused(['--config', file], {}, new RegExp(`^invalid TOML in ${escapeRegExp(file)} at line 2, column \\d+: `));
    assert.match(err.message, /log_level = = "info"/);
  });

  test('an unknown setting is named with the file', async () => {
    const file = await tomlFile('foo = 1\n');
    await refused(['--config', file], {}, `unknown setting "foo" in ${file}`);
  });

  test('an unknown setting inside a table is named with its table', async () => {
    const file = await tomlFile('[tls]\ncert = "a"\nkey = "b"\nca = "c"\n');
    await refused(['--config', file], {}, `unknown setting "tls.ca" in ${file}`);
    const limits = await tomlFile('[limits]\nmax_frame = 2048\n');
    const hint = '(did you mean limits.max_frame_size?)';
    await refused(['--config', limits], {}, `unknown setting "limits.max_frame" in ${limits} ${hint}`);
  });

  test('a table setting written at the top level, or a typo, gets a suggestion', async () => {
    const misplaced = await tomlFile('max_connections = 10\n');
    await refused(['--config', misplaced], {}, /^unknown setting "max_connections" in .* \(did you mean limits\.max_connections\?\)$/);
    const dashed = await tomlFile('data-dir = "x"\n');
    await refused(['--config', dashed], {}, /\(did you mean data_dir\?\)$/);
    const unknownTable = await tomlFile('[server]\nport = 1\n');
    await refused(['--config', unknownTable], {}, `unknown setting "server" in ${unknownTable}`);
  });

  test('a table name used as a value is refused', async () => {
    const file = await tomlFile('tls = "on"\n');
    await refused(['--config', file], {}, `invalid value "on" for tls in ${file}: expected a [tls] table`);
  });

  test('values of the wrong type name the key and the file', async () => {
    const cases: [string, string][] = [
      ['listen = 9527\n', `invalid value 9527 for listen in FILE: expected HOST:PORT as a string`],
      ['memory = "yes"\n', `invalid value "yes" for memory in FILE: expected true or false (unquoted)`],
      ['[limits]\nmax_connections = "50"\n', `invalid value "50" for limits.max_connections in FILE: ${WHOLE} (unquoted)`],
      ['[limits]\nmax_connections = 1.5\n', `invalid value 1.5 for limits.max_connections in FILE: ${WHOLE}`],
      ['[limits]\nmax_frame_size = 10\n', `invalid value 10 for limits.max_frame_size in FILE: ${FRAME_SIZE}`],
      ['[limits]\nmax_frame_size = true\n', `invalid value true for limits.max_frame_size in FILE: ${FRAME_SIZE}`],
      ['log_level = ["info"]\n', `invalid value an array for log_level in FILE: ${LEVELS} as a string`],
    ];
    for (const [text, message] of cases) {
      const file = await tomlFile(text);
      await refused(['--config', file], {}, message.replace('FILE', file));
    }
  });

  test('sizes in the file may be integers or strings with units', async () => {
    const file = await tomlFile('[limits]\nmax_frame_size = 4096\nsubscriber_backlog_bytes = "8 MiB"\n');
    const config = await load(['--config', file]);
    assert.equal(config.limits.maxFrameSize, 4096);
    assert.equal(config.limits.subscriberBacklogBytes, 8 * MiB);
  });

  test('a missing config file, or a directory, is named with where it came from', async () => {
    const missing = path.join(dir, 'missing.toml');
    await refused(['--config', missing], {}, `cannot read config file ${missing} (from --config): no such file`);
    await refused([], { PROTOKV_CONFIG: missing }, `cannot read config file ${missing} (from PROTOKV_CONFIG): no such file`);
    await refused(['--config', dir], {}, new RegExp(`^cannot read config file ${escapeRegExp(dir)} \\(from --config\\): `));
  });

  test('an empty file is fine', async () => {
    const file = await tomlFile('');
    assert.equal((await load(['--config', file])).sources.listen, 'default');
  });
});

describe('TLS settings', () => {
  test('certificate and key together enable TLS; a client CA adds mutual TLS', async () => {
    const plain = await load(['--tls-cert', tls.files.server, '--tls-key', tls.files.serverKey]);
    assert.deepEqual(plain.tls, { cert: tls.files.server, key: tls.files.serverKey });
    const mutual = await load([], {
      PROTOKV_TLS_CERT: tls.files.server,
      PROTOKV_TLS_KEY: tls.files.serverKey,
      PROTOKV_TLS_CLIENT_CA: tls.files.ca,
    });
    assert.deepEqual(mutual.tls, { cert: tls.files.server, key: tls.files.serverKey, clientCa: tls.files.ca });
  });

  test('the key needs the certificate, named as the key was given', async () => {
    await refused(['--tls-key', tls.files.serverKey], {}, '--tls-key requires --tls-cert');
    await refused([], { PROTOKV_TLS_KEY: tls.files.serverKey }, 'PROTOKV_TLS_KEY requires PROTOKV_TLS_CERT');
    const file = await tomlFile(`[tls]\nkey = ${JSON.stringify(tls.files.serverKey)}\n`);
    await refused(['--config', file], {}, `tls.key in ${file} requires tls.cert`);
  });

  test('the certificate needs the key', async () => {
    const err = await refused(['--tls-cert', tls.files.server], {}, '--tls-cert requires --tls-key');
    assert.equal(err.setting, 'tlsCert');
  });

  test('a client CA needs the certificate and key', async () => {
    await refused(['--tls-client-ca', tls.files.ca], {}, '--tls-client-ca requires --tls-cert and --tls-key');
  });

  test('the pair may come from different sources', async () => {
    const config = await load(['--tls-cert', tls.files.server], { PROTOKV_TLS_KEY: tls.files.serverKey });
    assert.deepEqual(config.tls, { cert: tls.files.server, key: tls.files.serverKey });
  });

  test('unreadable TLS files are refused at load', async () => {
    const missing = path.join(dir, 'nope.pem');
    const key = tls.files.serverKey;
    await refused(['--tls-cert', missing, '--tls-key', key], {}, `cannot read --tls-cert file ${missing}: no such file`);
    await refused(['--tls-cert', tls.files.server, '--tls-key', dir], {}, `cannot read --tls-key file ${dir}: not a file`);
    await refused(
      ['--tls-cert', tls.files.server, '--tls-key', tls.files.serverKey],
      { PROTOKV_TLS_CLIENT_CA: missing },
      `cannot read PROTOKV_TLS_CLIENT_CA file ${missing}: no such file`,
    );
  });
});

describe('the RESP listener setting', () => {
  test('is off by default and with "off", in any case', async () => {
    assert.equal((await load()).resp, undefined);
    assert.equal((await load(['--resp', 'off'])).resp, undefined);
    assert.equal((await load([], { PROTOKV_RESP: 'OFF' })).resp, undefined);
    assert.deepEqual((await load(['--resp', 'localhost:6380'])).resp, { host: 'localhost', port: 6380 });
  });

  test('a bad value names the setting', async () => {
    await refused(['--resp', 'nope'], {}, 'invalid value "nope" for --resp: expected HOST:PORT, e.g. 127.0.0.1:9527');
    await refused(['--resp', ''], {}, /for --resp: expected HOST:PORT or off/);
  });

  test('serve --help lists it', () => {
    assert.match(renderServeHelp(), /--resp HOST:PORT\|off\s+Address of the RESP listener/);
  });
});

describe('non-loopback addresses', () => {
  test('plain TCP on a non-loopback address needs TLS or --insecure', async () => {
    for (const address of ['0.0.0.0:9527', '[::]:9527', '192.0.2.10:1', 'kv.example.com:1', '128.0.0.1:1']) {
      const err = await refused(['--listen', address], {}, /is not a loopback address: set --tls-cert and --tls-key .*, or --insecure/);
      assert.match(err.message, new RegExp(`^--listen ${escapeRegExp(address)} is not`));
      assert.equal(err.setting, 'listen');
    }
    await refused([], { PROTOKV_LISTEN: '0.0.0.0:1' }, /^PROTOKV_LISTEN 0\.0\.0\.0:1 is not a loopback address/);
  });

  test('the RESP listener follows the same rule', async () => {
    const err = await refused(['--resp', '0.0.0.0:6379'], {}, /^--resp 0\.0\.0\.0:6379 is not a loopback address: set --tls-cert and --tls-key/);
    assert.equal(err.setting, 'resp');
    await refused([], { PROTOKV_RESP: '[::]:6379' }, /^PROTOKV_RESP \[::\]:6379 is not a loopback address/);
    assert.deepEqual((await load(['--resp', '0.0.0.0:6379', '--insecure'])).resp, { host: '0.0.0.0', port: 6379 });
  });

  test('--insecure allows it', async () => {
    const config = await load(['--listen', '0.0.0.0:9527', '--insecure']);
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 9527 });
    assert.equal(config.insecure, true);
  });

  test('TLS allows it', async () => {
    const tlsFlags = ['--tls-cert', tls.files.server, '--tls-key', tls.files.serverKey];
    const config = await load(['--listen', '0.0.0.0:9527', ...tlsFlags]);
    assert.equal(config.listen.host, '0.0.0.0');
  });

  test('every loopback form is accepted as plain TCP', async () => {
    for (const address of ['127.0.0.1:1', '127.255.0.9:1', 'localhost:1', 'LOCALHOST:1', '[::1]:1', '[0:0:0:0:0:0:0:1]:1']) {
      await load(['--listen', address]);
    }
  });
});

describe('the HTTP listener and tracing settings', () => {
  test('--http off disables the HTTP listener, in any case and from any source', async () => {
    assert.equal((await load(['--http', 'off'])).http.listen, undefined);
    assert.equal((await load([], { PROTOKV_HTTP: 'OFF' })).http.listen, undefined);
    const file = await tomlFile('[http]\nlisten = "off"\nmetrics = false\n');
    const config = await load(['--config', file]);
    assert.equal(config.http.listen, undefined);
    assert.equal(config.http.metrics, false);
  });

  test('a bad HTTP address is named with where it came from', async () => {
    await refused(['--http', 'nowhere'], {}, /^invalid value "nowhere" for --http: expected HOST:PORT, e\.g\. 127\.0\.0\.1:9527$/);
    await refused([], { PROTOKV_HTTP: '127.0.0.1:99999' }, /for PROTOKV_HTTP: expected HOST:PORT with a port from 0 to 65535/);
    await refused(['--http', ''], {}, /for --http: expected HOST:PORT or off/);
  });

  test('plain HTTP on a non-loopback address needs TLS or --insecure, like the main listener', async () => {
    const err = await refused(['--http', '0.0.0.0:9528'], {}, /^--http 0\.0\.0\.0:9528 is not a loopback address: .* or --insecure to serve plain, unencrypted HTTP$/);
    assert.equal(err.setting, 'http');
    assert.equal((await load(['--http', '0.0.0.0:9528', '--insecure'])).http.listen?.host, '0.0.0.0');
    const tlsFlags = ['--tls-cert', tls.files.server, '--tls-key', tls.files.serverKey];
    assert.equal((await load(['--http', '[::]:9528', ...tlsFlags])).http.listen?.host, '::');
  });

  test('tracing is off without an endpoint, whatever the sampling says', async () => {
    assert.equal((await load(['--trace-sample', '0.5'])).tracing, undefined);
    assert.equal((await load([], { OTEL_TRACES_SAMPLER: 'always_on' })).tracing, undefined);
  });

  test('--otlp-endpoint is a base URL; /v1/traces is appended unless already there', async () => {
    const endpoint = async (text: string) => (await load(['--otlp-endpoint', text])).tracing?.endpoint;
    assert.equal(await endpoint('http://collector:4318'), 'http://collector:4318/v1/traces');
    assert.equal(await endpoint('https://collector/otlp/'), 'https://collector/otlp/v1/traces');
    assert.equal(await endpoint('http://collector:4318/v1/traces'), 'http://collector:4318/v1/traces');
    assert.deepEqual((await load(['--otlp-endpoint', 'http://c:1'])).tracing, {
      endpoint: 'http://c:1/v1/traces',
      protocol: 'http/protobuf',
      sampleRatio: 1,
      serviceName: 'protokv',
    });
  });

  test('the standard OpenTelemetry variables turn tracing on and shape it', async () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.01',
      OTEL_SERVICE_NAME: 'kv-eu-1',
    };
    assert.deepEqual((await load([], env)).tracing, {
      endpoint: 'http://base:4318/v1/traces',
      protocol: 'http/json',
      sampleRatio: 0.01,
      serviceName: 'kv-eu-1',
    });
    // The signal-specific endpoint is used as given and beats the base one; protokv's own setting beats both.
    const traces = { ...env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom' };
    assert.equal((await load([], traces)).tracing?.endpoint, 'http://traces:9999/custom');
    assert.equal((await load(['--otlp-endpoint', 'http://own:1'], traces)).tracing?.endpoint, 'http://own:1/v1/traces');
    // --trace-sample beats the sampler variables; the traces protocol variable beats the general one.
    assert.equal((await load(['--trace-sample', '0.5'], env)).tracing?.sampleRatio, 0.5);
    assert.equal((await load([], { ...env, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' })).tracing?.protocol, 'http/protobuf');
    for (const [sampler, ratio] of [['always_off', 0], ['always_on', 1], ['traceidratio', 1]] as const) {
      const config = await load([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318', OTEL_TRACES_SAMPLER: sampler });
      assert.equal(config.tracing?.sampleRatio, ratio, sampler);
    }
  });

  test('bad tracing values are named with where they came from', async () => {
    await refused(['--otlp-endpoint', 'collector:4318'], {}, /^invalid value "collector:4318" for --otlp-endpoint: expected an http:\/\/ or https:\/\/ URL/);
    await refused([], { PROTOKV_OTLP_ENDPOINT: 'not a url' }, /for PROTOKV_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/);
    await refused([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'grpc://x:4317' }, /for OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/);
    await refused(['--trace-sample', '1.5'], {}, /^invalid value "1\.5" for --trace-sample: expected a number from 0 to 1/);
    await refused(['--trace-sample', 'half'], {}, /for --trace-sample: expected a number from 0 to 1/);
    await refused([], { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, /^invalid value "grpc" for OTEL_EXPORTER_OTLP_PROTOCOL: expected http\/protobuf or http\/json \(grpc is not supported\)$/);
    await refused([], { OTEL_TRACES_SAMPLER: 'jaeger_remote' }, /^invalid value "jaeger_remote" for OTEL_TRACES_SAMPLER: expected one of always_on/);
    await refused([], { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '-1' }, /for OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1/);
    const file = await tomlFile('[tracing]\nsample = "0.5"\n');
    await refused(['--config', file], {}, /for tracing\.sample in .*: expected a number from 0 to 1 \(unquoted\)/);
  });
});

describe('helpers', () => {
  test('parseByteSize understands bytes and units', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['1024', 1024],
      ['1B', 1],
      ['1KiB', 1024],
      ['64MiB', 64 * MiB],
      ['64 MiB', 64 * MiB],
      ['64mib', 64 * MiB],
      ['1.5GiB', 1.5 * 1024 * MiB],
      ['2TiB', 2 * 1024 ** 4],
      ['1KB', 1000],
      ['3MB', 3_000_000],
      ['1GB', 1e9],
    ];
    for (const [text, bytes] of cases) assert.equal(parseByteSize(text), bytes, text);
    for (const bad of ['', 'MiB', '1XiB', '-1', '1.2.3', '0.3KiB', '1 K']) {
      assert.throws(() => parseByteSize(bad), ConfigError, bad);
    }
  });

  test('formatByteSize picks the largest exact unit', () => {
    assert.equal(formatByteSize(64 * MiB), '64MiB');
    assert.equal(formatByteSize(1024), '1KiB');
    assert.equal(formatByteSize(1536), '1536');
    assert.equal(formatByteSize(1000), '1000');
    for (const n of [1024, 3 * MiB, 5 * 1024 ** 3, 777]) assert.equal(parseByteSize(formatByteSize(n)), n);
  });

  test('listen addresses round-trip', () => {
    for (const text of ['127.0.0.1:9527', '[::1]:0', 'localhost:80', '[fe80::1]:65535']) {
      assert.equal(formatListenAddress(parseListenAddress(text)), text);
    }
    assert.throws(() => parseListenAddress('nope'), /^ConfigError: invalid value "nope": expected HOST:PORT/);
  });

  test('isLoopbackHost', () => {
    for (const host of ['localhost', '127.0.0.1', '127.9.9.9', '::1', '[::1]', '::ffff:127.0.0.1']) {
      assert.ok(isLoopbackHost(host), host);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', 'localhost.example.com', '128.0.0.1']) {
      assert.ok(!isLoopbackHost(host), host);
    }
  });
});

describe('help text', () => {
  const help = renderServeHelp();

  test('lists every setting with its flag, environment variable, TOML key and default', () => {
    for (const name of names) {
      const s = spec(name);
      const flag = s.kind === 'boolean' ? `--[no-]${s.flag}` : `--${s.flag} `;
      assert.ok(help.includes(flag), `${name}: ${flag}`);
      assert.ok(help.includes(s.env), `${name}: ${s.env}`);
      if (s.toml !== undefined) assert.ok(help.includes(`toml ${s.toml}`), `${name}: ${s.toml}`);
      assert.ok(help.includes(s.description.split(' ').slice(0, 3).join(' ')), `${name}: description`);
    }
    assert.match(help, /default 127\.0\.0\.1:9527/);
    assert.match(help, /default 64MiB/);
    assert.match(help, /^Usage: protokv serve \[options\]/);
    assert.match(help, /--help/);
  });

  test('fits in 100 columns', () => {
    for (const line of help.split('\n')) assert.ok(line.length <= 100, line);
  });
});

describe('the settings table', () => {
  test('flags, environment variables and TOML keys are unique and consistently named', () => {
    const flags = names.map((n) => spec(n).flag);
    const envs = names.map((n) => spec(n).env);
    const tomls = names.map((n) => spec(n).toml).filter((t) => t !== undefined);
    assert.equal(new Set(flags).size, flags.length);
    assert.equal(new Set(envs).size, envs.length);
    assert.equal(new Set(tomls).size, tomls.length);
    for (const name of names) {
      const s = spec(name);
      assert.equal(s.env, `PROTOKV_${s.flag.toUpperCase().replace(/-/g, '_')}`, name);
      // A second listener's address is `<name>.listen` in the file and `--<name>` as a flag.
      if (s.toml !== undefined && s.toml !== `${s.flag}.listen`) {
        assert.equal(s.toml.split('.').pop(), s.flag.replace(/^(tls|http|store-tls|trace)-/, '').replace(/-/g, '_'), name);
      }
    }
  });

  test('every default passes its own validation', async () => {
    const config = await load();
    for (const name of names) assert.equal(config.sources[name], 'default');
  });
});

describe('store', () => {
  test('lmdb by default; memory and Redis addresses by flag, environment or file', async () => {
    assert.deepEqual((await load()).store, { kind: 'lmdb' });
    assert.deepEqual((await load(['--store', 'MEMORY'])).store, { kind: 'memory' });
    assert.equal((await load(['--store', 'memory'])).memory, true);
    const env = await load([], { PROTOKV_STORE: 'redis://127.0.0.1:6379?timeout_ms=500&prefix=app:' });
    assert.deepEqual(env.store, { kind: 'redis', target: parseRedisUrl('redis://127.0.0.1:6379?timeout_ms=500&prefix=app:') });
    const file = await tomlFile('store = "redis-cluster://a.example:7000,[::1]:7001"\n');
    const fromFile = (await load(['--config', file])).store;
    assert.ok(fromFile.kind === 'redis');
    assert.deepEqual(fromFile.target.hosts, [
      { host: 'a.example', port: 7000 },
      { host: '::1', port: 7001 },
    ]);
    assert.equal(fromFile.target.cluster, true);
    assert.equal(fromFile.target.timeoutMs, 2000);
    assert.equal(fromFile.target.prefix, 'protokv:');
  });

  test('--memory is short for --store memory and conflicts with any other store', async () => {
    assert.deepEqual((await load(['--memory'])).store, { kind: 'memory' });
    assert.deepEqual((await load(['--memory', '--store', 'memory'])).store, { kind: 'memory' });
    await refused(['--memory', '--store', 'lmdb'], {}, '--memory (short for --store memory) conflicts with --store lmdb');
    await refused([], { PROTOKV_MEMORY: '1', PROTOKV_STORE: 'redis://h:1' }, /^PROTOKV_MEMORY .* conflicts with PROTOKV_STORE redis$/);
  });

  test('bad store addresses are refused naming the problem, never echoing a password', async () => {
    const cases: [string, RegExp][] = [
      ['postgres://h:1', /expected lmdb, memory, redis:\/\/HOST:PORT or redis-cluster:\/\//],
      ['redis://h', /"h" is not HOST:PORT/],
      ['redis://h:0', /port 1 to 65535/],
      ['redis://a:1,b:2', /redis:\/\/ names one server; list several seed nodes with redis-cluster:\/\//],
      ['redis://h:1/2', /no path/],
      ['redis://h:1?wait_replicas=x', /wait_replicas: expected a whole number from 0 to 64/],
      ['redis://h:1?timeout_ms=0', /timeout_ms: expected a whole number from 1 to 600000/],
      ['redis://h:1?prefix={x}', /prefix: expected at most 64 letters/],
      ['redis://h:1?color=red', /unknown option "color"; known: wait_replicas, timeout_ms, prefix/],
      ['redis://h:1?wait_replicas=1&wait_replicas=2', /option wait_replicas is given twice/],
      ['redis://user:hunter2@h:1?x=1', /^invalid value "redis:\/\/user:\*\*\*@h:1\?x=1" for --store: unknown option/],
    ];
    for (const [text, pattern] of cases) {
      const err = await refused(['--store', text], {}, pattern);
      assert.doesNotMatch(err.message, /hunter2/);
      assert.equal(err.setting, 'store');
    }
  });

  test('store TLS files apply to rediss:// stores only, and a certificate needs its key', async () => {
    const base = ['--store', 'rediss://127.0.0.1:6380'];
    const config = await load([...base, '--store-tls-ca', tls.files.ca]);
    assert.deepEqual(config.storeTls, { ca: tls.files.ca });
    await refused(['--store', 'redis://127.0.0.1:6379', '--store-tls-ca', tls.files.ca], {}, /^--store-tls-ca applies to a TLS store only: set --store to rediss:/);
    await refused(['--store-tls-ca', tls.files.ca], {}, /applies to a TLS store only/);
    await refused([...base, '--store-tls-cert', tls.files.client], {}, '--store-tls-cert requires --store-tls-key');
    await refused([...base, '--store-tls-key', tls.files.clientKey], {}, '--store-tls-key requires --store-tls-cert');
    await refused([...base, '--store-tls-ca', path.join(dir, 'missing.pem')], {}, /cannot read --store-tls-ca file .*missing\.pem: no such file/);
  });
});
