/**
 * The flags of `protokv bench`, parsed strictly: a typo must fail loudly rather than silently
 * benchmark something other than what was asked.
 */
import { parseArgs } from 'node:util';
import { parseListenAddress } from '../config.js';

/** The workloads `protokv bench` can generate. */
export const BENCH_COMMANDS = ['hset', 'hget', 'hmget', 'hgetall', 'publish', 'mix'] as const;
export type BenchCommand = (typeof BENCH_COMMANDS)[number];

/** Connection multiplexing modes. */
export const BENCH_MUX_MODES = ['none', 'yamux'] as const;
export type BenchMux = (typeof BENCH_MUX_MODES)[number];

/** Largest `--keyspace`: keys are 12-digit numbers, and random indexes stay small integers. */
export const MAX_KEYSPACE = 1_000_000_000;

/** What one benchmark run does. */
export interface BenchOptions {
  host: string;
  port: number;
  /** File names of the TLS material; TLS is used when any of them (or `servername`) is set. */
  tls: { ca?: string; cert?: string; key?: string; servername?: string } | undefined;
  connections: number;
  pipeline: number;
  /** Total requests to complete; exclusive with `durationSec`. */
  requests: number | undefined;
  /** Run for this long instead of a request count. */
  durationSec: number | undefined;
  command: BenchCommand;
  keyspace: number;
  valueSize: number;
  table: string;
  /** Keys per HMGET, and fields per hash for HGETALL. */
  fields: number;
  mux: BenchMux;
  /** Connect over WebSocket to the HTTP listener's `/ws` instead of the protokv port. */
  websocket: boolean;
  json: boolean;
  /** Skip loading the keyspace before read benchmarks. */
  noPreload: boolean;
}

/** A mistake on the command line; the CLI prints it and exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `protokv bench --help`. */
export const BENCH_HELP = `usage: protokv bench [options]

Load generator for a protokv server: opens many connections, keeps a number of requests in
flight on each, and reports throughput and latency percentiles.

Target:
  --server HOST:PORT       server address (default 127.0.0.1:9527)
  --tls-ca FILE            connect with TLS, trusting this CA
  --tls-cert FILE          client certificate, for mutual TLS (with --tls-key)
  --tls-key FILE           client private key, for mutual TLS (with --tls-cert)
  --tls-servername NAME    name the server certificate must match (default: the host)
  --mux MODE               none (default): one protokv stream per connection;
                           yamux: one connection carrying --connections yamux streams
  --ws                     one WebSocket per connection, to /ws of the HTTP listener: --server
                           is then its address (default 127.0.0.1:9528); TLS flags make it wss

Load:
  -c, --connections N      concurrent streams (default 50)
  -P, --pipeline N         requests in flight on each stream (default 1)
  -n, --requests N         stop after N requests (default 100000)
  -d, --duration SECONDS   run for this long instead of a request count
  --command NAME           hset | hget | hmget | hgetall | publish | mix (default hset)
  --keyspace N             number of distinct keys, picked at random (default 10000)
  --value-size BYTES       size of each written value (default 32)
  --table NAME             table (and PUBLISH topic) to use (default bench)
  --fields N               keys per HMGET; fields per hash for HGETALL (default 10)
  --no-preload             do not load the keyspace before a read benchmark

Output:
  --json                   print one JSON object as the last line of stdout
  -h, --help               show this help

Workloads:
  hset      HSET TABLE KEY VALUE, KEY random in the keyspace
  hget      HGET TABLE KEY (the keyspace is loaded first, untimed)
  hmget     HMGET TABLE with --fields random keys (keyspace loaded first)
  hgetall   HGETALL of one of keyspace/fields hashes TABLE:N of --fields fields each
            (loaded first)
  publish   PUBLISH TABLE VALUE (subscribers, if any, are not counted)
  mix       each request is HGET or HSET with equal probability (keyspace loaded first)

Keys are 12-digit zero-padded numbers (000000000042), values are strings of --value-size
bytes. The progress line goes to stderr, and only when stderr is a terminal.
Exit status: 0 when every request succeeded, 1 when any response was an error or a
connection failed, 2 for invalid flags.
`;

const FLAGS = {
  server: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  connections: { type: 'string', short: 'c' },
  pipeline: { type: 'string', short: 'P' },
  requests: { type: 'string', short: 'n' },
  duration: { type: 'string', short: 'd' },
  command: { type: 'string' },
  keyspace: { type: 'string' },
  'value-size': { type: 'string' },
  table: { type: 'string' },
  fields: { type: 'string' },
  mux: { type: 'string' },
  ws: { type: 'boolean' },
  'no-preload': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The parsed command line: options to run, or a request for help. */
export type ParsedBenchArgs = { help: true } | { help: false; options: BenchOptions };

/** Parses `protokv bench` arguments; throws {@link UsageError} for anything invalid. */
export function parseBenchArgs(argv: string[]): ParsedBenchArgs {
  const { values } = parseFlags(argv);
  if (values.help === true) return { help: true };

  const websocket = values.ws === true;
  const server = values.server ?? (websocket ? '127.0.0.1:9528' : '127.0.0.1:9527');
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseListenAddress(server));
  } catch (err) {
    throw new UsageError(`invalid --server "${server}": ${(err as Error).message}`);
  }
  if (port === 0) throw new UsageError(`invalid --server "${server}": port 0 cannot be connected to`);

  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key must be given together');
  }
  const tlsWanted = [values['tls-ca'], values['tls-cert'], values['tls-key'], values['tls-servername']].some((v) => v !== undefined);

  if (values.requests !== undefined && values.duration !== undefined) {
    throw new UsageError('--requests and --duration cannot be used together');
  }
  const durationSec = values.duration === undefined ? undefined : positiveNumber('--duration', values.duration, 24 * 3600);
  const requests = durationSec !== undefined ? undefined : positiveInteger('--requests', values.requests ?? '100000', 1e12);

  const command = oneOf('--command', values.command ?? 'hset', BENCH_COMMANDS);
  const mux = oneOf('--mux', values.mux ?? 'none', BENCH_MUX_MODES);
  if (websocket && mux !== 'none') throw new UsageError('--ws and --mux yamux cannot be used together: a WebSocket carries one stream');
  const keyspace = positiveInteger('--keyspace', values.keyspace ?? '10000', MAX_KEYSPACE);
  const fields = positiveInteger('--fields', values.fields ?? '10', 100_000);
  if (command === 'hgetall' && fields > keyspace) {
    throw new UsageError(`--fields (${fields}) cannot exceed --keyspace (${keyspace}) for hgetall`);
  }

  return {
    help: false,
    options: {
      host,
      port,
      tls: tlsWanted
        ? { ca: values['tls-ca'], cert: values['tls-cert'], key: values['tls-key'], servername: values['tls-servername'] }
        : undefined,
      connections: positiveInteger('--connections', values.connections ?? '50', 100_000),
      pipeline: positiveInteger('--pipeline', values.pipeline ?? '1', 100_000),
      requests,
      durationSec,
      command,
      keyspace,
      valueSize: nonNegativeInteger('--value-size', values['value-size'] ?? '32', 64 * 1024 * 1024),
      table: values.table ?? 'bench',
      fields,
      mux,
      websocket,
      json: values.json === true,
      noPreload: values['no-preload'] === true,
    },
  };
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

function positiveInteger(flag: string, text: string, max: number): number {
  const n = nonNegativeInteger(flag, text, max);
  if (n === 0) throw new UsageError(`invalid ${flag} "${text}": must be at least 1`);
  return n;
}

function nonNegativeInteger(flag: string, text: string, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`invalid ${flag} "${text}": expected a whole number`);
  const n = Number(text);
  if (n > max) throw new UsageError(`invalid ${flag} "${text}": the maximum is ${max}`);
  return n;
}

function positiveNumber(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`invalid ${flag} "${text}": expected a positive number`);
  if (n > max) throw new UsageError(`invalid ${flag} "${text}": the maximum is ${max}`);
  return n;
}

function oneOf<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text)) {
    throw new UsageError(`invalid ${flag} "${text}": expected one of ${allowed.join(', ')}`);
  }
  return text as T;
}
