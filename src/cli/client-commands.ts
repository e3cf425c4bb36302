/**
 * The client sub-commands of the CLI (`protokv hset …`, `hget`, … `publish`, `subscribe`): one
 * table row per command says how to read its arguments and how to print its answer. The
 * interactive mode (`repl.ts`) runs the same table.
 */
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { connect, type ConnectOptions, type KvClient } from '../client/client.js';
import type { TableInfo } from '../client/core/client.js';
import { ProtokvBaseError, ProtokvError } from '../client/core/errors.js';
import type { Subscription } from '../client/core/subscription.js';
import { parseListenAddress } from '../config.js';
import type { KvValue } from '../protocol/values.js';
import { humanValue, jsonValue } from './output.js';

const VALUE_TYPES = ['string', 'int', 'float', 'bool', 'bytes'] as const;
type ValueType = (typeof VALUE_TYPES)[number];

/** What a command prints: lines for people, a JSON document for `--json`. */
export interface Output {
  human: string[];
  json: unknown;
}

/** Reads a VALUE argument (literal, `-` for stdin, `@file`) as the chosen `--type`. */
export type ValueReader = (text: string) => Promise<KvValue>;

/** What a command may use besides the client and its arguments. */
export interface CommandContext {
  /** Reads a VALUE argument. */
  value: ValueReader;
  /** Prints part of the answer now (listings that arrive a page at a time). */
  emit: (out: Output) => void;
  /** Asks a yes/no question (false when nobody can answer it). */
  confirm: (question: string) => Promise<boolean>;
  options: ParsedOptions;
}

export interface ClientCommand {
  usage: string;
  summary: string;
  /** Positional arguments: exact count, or a minimum when `variadic`. */
  args: number;
  variadic?: boolean;
  /** Whether the trailing arguments come in KEY VALUE pairs. */
  pairs?: boolean;
  /** The answer to print (or nothing, when it was emitted as it came). */
  run(kv: KvClient, args: string[], context: CommandContext): Promise<Output | undefined>;
}

const one = (v: KvValue | undefined): Output => ({ human: [humanValue(v)], json: jsonValue(v) });
const many = (vs: (KvValue | undefined)[]): Output => ({ human: vs.map(humanValue), json: vs.map(jsonValue) });
const bool = (b: boolean): Output => ({ human: [String(b)], json: b });
const bools = (bs: boolean[]): Output => ({ human: bs.map(String), json: bs });
const OK: Output = { human: ['OK'], json: { ok: true } };

/** `--count` as a page size. */
function pageSize(options: ParsedOptions): number {
  const n = nonNegative('count', options.count) ?? 0;
  if (n > 10_000) throw new UsageError(`invalid --count "${options.count}": at most 10000`);
  return n;
}

const entryOutput = ([k, v]: [string, KvValue]): Output => ({ human: [`${JSON.stringify(k)} => ${humanValue(v)}`], json: { key: k, value: jsonValue(v) } });
const tableOutput = (t: TableInfo): Output => ({ human: [`${JSON.stringify(t.name)} (${t.keys} ${t.keys === 1 ? 'key' : 'keys'})`], json: t });
const cursorLine = (cursor: string): Output => ({ human: [`(next cursor) ${JSON.stringify(cursor)}`], json: { cursor } });

export const CLIENT_COMMANDS: Record<string, ClientCommand> = {
  hget: {
    usage: 'hget TABLE KEY',
    summary: 'print the value of KEY (exit 1 if it does not exist)',
    args: 2,
    run: async (kv, [t, k]) => {
      const v = await kv.hget(t, k);
      if (v === undefined) throw new ProtokvError(404, `Not found: table ${t}, key ${k}`);
      return one(v);
    },
  },
  hgetall: {
    usage: 'hgetall TABLE',
    summary: 'print every pair of TABLE',
    args: 1,
    run: async (kv, [t]) => {
      const all = await kv.hgetall(t);
      return {
        human: Array.from(all, ([k, v]) => `${JSON.stringify(k)} => ${humanValue(v)}`),
        json: Object.fromEntries(Array.from(all, ([k, v]) => [k, jsonValue(v)])),
      };
    },
  },
  hmget: {
    usage: 'hmget TABLE KEY...',
    summary: 'print the values of the KEYs, in order ((none) when missing)',
    args: 2,
    variadic: true,
    run: async (kv, [t, ...keys]) => many(await kv.hmget(t, keys)),
  },
  hset: {
    usage: 'hset TABLE KEY VALUE',
    summary: 'store VALUE; print the previous value',
    args: 3,
    run: async (kv, [t, k, v], { value }) => one(await kv.hset(t, k, await value(v))),
  },
  hmset: {
    usage: 'hmset TABLE KEY VALUE [KEY VALUE]...',
    summary: 'store every pair atomically; print the previous values',
    args: 3,
    variadic: true,
    pairs: true,
    run: async (kv, [t, ...rest], { value }) => {
      const pairs: [string, KvValue][] = [];
      for (let i = 0; i < rest.length; i += 2) pairs.push([rest[i], await value(rest[i + 1])]);
      return many(await kv.hmset(t, pairs));
    },
  },
  hdel: {
    usage: 'hdel TABLE KEY',
    summary: 'remove KEY; print the removed value',
    args: 2,
    run: async (kv, [t, k]) => one(await kv.hdel(t, k)),
  },
  hmdel: {
    usage: 'hmdel TABLE KEY...',
    summary: 'remove the KEYs atomically; print the removed values',
    args: 2,
    variadic: true,
    run: async (kv, [t, ...keys]) => many(await kv.hmdel(t, keys)),
  },
  hexist: {
    usage: 'hexist TABLE KEY',
    summary: 'print whether KEY exists',
    args: 2,
    run: async (kv, [t, k]) => bool(await kv.hexist(t, k)),
  },
  hmexist: {
    usage: 'hmexist TABLE KEY...',
    summary: 'print whether each KEY exists',
    args: 2,
    variadic: true,
    run: async (kv, [t, ...keys]) => bools(await kv.hmexist(t, keys)),
  },
  publish: {
    usage: 'publish TOPIC [VALUE]...',
    summary: 'send the VALUEs to every subscriber of TOPIC',
    args: 1,
    variadic: true,
    run: async (kv, [topic, ...values], { value }) => {
      const data: KvValue[] = [];
      for (const v of values) data.push(await value(v));
      await kv.publish(topic, ...data);
      return OK;
    },
  },
  unsubscribe: {
    usage: 'unsubscribe TOPIC ID',
    summary: 'end subscription ID on TOPIC',
    args: 2,
    run: async (kv, [topic, id]) => {
      const n = Number(id);
      if (!Number.isInteger(n) || n <= 0 || n > 0xffff_ffff) throw new UsageError(`invalid subscription id "${id}"`);
      await kv.unsubscribe(topic, n);
      return OK;
    },
  },
  hlen: {
    usage: 'hlen TABLE',
    summary: 'print the number of keys in TABLE',
    args: 1,
    run: async (kv, [t]) => {
      const n = await kv.hlen(t);
      return { human: [`(integer) ${n}`], json: n };
    },
  },
  hscan: {
    usage: 'hscan TABLE [--count N] [--cursor C]',
    summary: 'print every pair of TABLE, a page at a time (one page with --cursor)',
    args: 1,
    run: async (kv, [t], { emit, options }) => {
      const count = pageSize(options);
      if (options.cursor !== undefined) {
        const page = await kv.hscan(t, options.cursor, count);
        for (const e of page.items) emit(entryOutput(e));
        emit(cursorLine(page.cursor));
        return undefined;
      }
      for await (const e of kv.scan(t, { count })) emit(entryOutput(e));
      return undefined;
    },
  },
  tables: {
    usage: 'tables [--count N] [--cursor C]',
    summary: 'print every non-empty table and its number of keys (one page with --cursor)',
    args: 0,
    run: async (kv, _args, { emit, options }) => {
      const count = pageSize(options);
      if (options.cursor !== undefined) {
        const page = await kv.tables(options.cursor, count);
        for (const t of page.items) emit(tableOutput(t));
        emit(cursorLine(page.cursor));
        return undefined;
      }
      for await (const t of kv.tables({ count })) emit(tableOutput(t));
      return undefined;
    },
  },
  hdrop: {
    usage: 'hdrop TABLE [--yes]',
    summary: 'remove TABLE and every key in it (asks first, unless --yes); print how many keys went',
    args: 1,
    run: async (kv, [t], { confirm, options }) => {
      if (!options.yes) {
        const keys = await kv.hlen(t);
        if (!(await confirm(`Drop table ${JSON.stringify(t)} and its ${keys} ${keys === 1 ? 'key' : 'keys'}? [y/N] `))) {
          throw new UsageError(`not dropping ${JSON.stringify(t)}: confirm at the prompt, or pass --yes`);
        }
      }
      const n = await kv.hdrop(t);
      return { human: [`(integer) ${n}`], json: n };
    },
  },
};

export const CONNECTION_HELP = `Connection options (every client command):
  --server HOST:PORT       server address (default 127.0.0.1:9527; env PROTOKV_SERVER)
  --tls-ca FILE            connect with TLS, trusting this CA (env PROTOKV_TLS_CA)
  --tls-cert FILE          client certificate, for mutual TLS (env PROTOKV_TLS_CLIENT_CERT)
  --tls-key FILE           client private key, for mutual TLS (env PROTOKV_TLS_CLIENT_KEY)
  --tls-servername NAME    name the server certificate must match (default: the host; env PROTOKV_TLS_SERVERNAME)
  --mux none|yamux         multiplexing the server speaks (default none; env PROTOKV_MUX)
  --timeout MS             time limit of each request (default 10000; 0: none)
  --reconnect-attempts N   subscribe and the interactive mode reconnect up to N times in a row
                           when the connection is lost (default 10; 0: give up at once)
  --json                   print JSON instead of readable output
  --type TYPE              how VALUE arguments are read: string (default), int, float, bool, bytes
                           (base64, or raw bytes with - or @FILE)
  --literal                take VALUE arguments as written (no - or @FILE)
  --count N, --cursor C    hscan, tables: page size (default 100), and one page from cursor C
  --yes                    hdrop: do not ask for confirmation

A VALUE of - is read from standard input, @FILE from that file (its exact bytes with --type
bytes, else its text); @@TEXT stands for the literal @TEXT.
`;

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {}

export const OPTIONS = {
  server: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  mux: { type: 'string' },
  timeout: { type: 'string' },
  'reconnect-attempts': { type: 'string' },
  json: { type: 'boolean' },
  type: { type: 'string', short: 't' },
  literal: { type: 'boolean' },
  count: { type: 'string' },
  cursor: { type: 'string' },
  yes: { type: 'boolean', short: 'y' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type ParsedOptions = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Where command-line values come from; `stdin` is read at most once. */
export interface ValueSources {
  readStdin(): Promise<Buffer>;
  literal?: boolean;
}

/** Reads VALUE arguments as `type`: literally, from stdin (`-`) or from a file (`@FILE`). */
export function valueReader(type: string, sources: ValueSources): ValueReader {
  if (!(VALUE_TYPES as readonly string[]).includes(type)) {
    throw new UsageError(`invalid --type "${type}": expected one of ${VALUE_TYPES.join(', ')}`);
  }
  const t = type as ValueType;
  return async (text) => {
    if (sources.literal) return parseValue(text, t);
    if (text.startsWith('@@')) return parseValue(text.slice(1), t);
    let content: Buffer;
    if (text === '-') content = await sources.readStdin();
    else if (text.startsWith('@') && text.length > 1) {
      try {
        content = await readFile(text.slice(1));
      } catch (err) {
        throw new UsageError(`cannot read the value from ${text.slice(1)}: ${(err as Error).message}`);
      }
    } else return parseValue(text, t);
    if (t === 'bytes') return content;
    const s = content.toString('utf8');
    return parseValue(t === 'string' ? s : s.trim(), t);
  };
}

/** Standard input, read once and kept for every `-`. */
export function stdinOnce(): () => Promise<Buffer> {
  let read: Promise<Buffer> | undefined;
  return () =>
    (read ??= (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    })());
}

function parseValue(text: string, type: ValueType): KvValue {
  switch (type) {
    case 'string':
      return text;
    case 'int':
      if (!/^[+-]?\d+$/.test(text)) throw new UsageError(`invalid int "${text}"`);
      if (BigInt(text) >= 1n << 63n || BigInt(text) < -(1n << 63n)) throw new UsageError(`int "${text}" is outside the int64 range`);
      return BigInt(text);
    case 'float': {
      const n = Number(text);
      if (text.trim() === '' || (Number.isNaN(n) && text !== 'NaN')) throw new UsageError(`invalid float "${text}"`);
      return n;
    }
    case 'bool':
      if (text === 'true') return true;
      if (text === 'false') return false;
      throw new UsageError(`invalid bool "${text}": expected true or false`);
    case 'bytes':
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new UsageError(`invalid bytes "${text}": expected base64`);
      return Buffer.from(text, 'base64');
  }
}

function nonNegative(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`invalid --${flag} "${text}": expected a whole number >= 0`);
  return n;
}

/**
 * The connection flags (or their environment variables) as client options. `longLived` is for
 * subscribe and the interactive mode, which reconnect; one-shot commands do not.
 */
export async function connectOptions(values: ParsedOptions, env: NodeJS.ProcessEnv = process.env, longLived = false): Promise<ConnectOptions> {
  const address = values.server ?? env.PROTOKV_SERVER ?? '127.0.0.1:9527';
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseListenAddress(address));
  } catch (err) {
    throw new UsageError(`invalid --server "${address}": ${(err as Error).message}`);
  }
  const mux = values.mux ?? env.PROTOKV_MUX ?? 'none';
  if (mux !== 'none' && mux !== 'yamux') throw new UsageError(`invalid --mux "${mux}": expected none or yamux`);
  const timeout = nonNegative('timeout', values.timeout);
  const attempts = nonNegative('reconnect-attempts', values['reconnect-attempts']) ?? 10;
  const base: ConnectOptions = {
    host,
    port,
    mux,
    ...(timeout === undefined ? {} : { requestTimeoutMs: timeout }),
    reconnect: longLived && attempts > 0 ? { maxAttempts: attempts } : false,
  };
  const ca = values['tls-ca'] ?? env.PROTOKV_TLS_CA;
  const cert = values['tls-cert'] ?? env.PROTOKV_TLS_CLIENT_CERT;
  const key = values['tls-key'] ?? env.PROTOKV_TLS_CLIENT_KEY;
  const servername = values['tls-servername'] ?? env.PROTOKV_TLS_SERVERNAME;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key must be given together');
  if (ca === undefined && cert === undefined && servername === undefined) return base;
  const read = async (what: string, f: string | undefined): Promise<Buffer | undefined> => {
    if (f === undefined) return undefined;
    try {
      return await readFile(f);
    } catch (err) {
      throw new UsageError(`cannot read the ${what} ${f}: ${(err as Error).message}`);
    }
  };
  const [caPem, certPem, keyPem] = await Promise.all([read('CA file', ca), read('client certificate', cert), read('client key', key)]);
  return { ...base, tls: { ca: caPem, cert: certPem, key: keyPem, servername } };
}

/** Negative numbers are values, not options: `protokv hset t k -5 --type int`; `-` is stdin. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

/** Parses a command's arguments (after its name). */
export function parseCommandArgs(argv: string[]): { values: ParsedOptions; positionals: string[] } {
  // parseArgs would read "-5" as an option; hide such tokens behind a marker it passes through.
  const hidden = new Map<string, string>();
  const args = argv.map((a, i) => {
    if (!NEGATIVE_NUMBER.test(a)) return a;
    const marker = `\u0000${i}`;
    hidden.set(marker, a);
    return marker;
  });
  try {
    const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
    return { values, positionals: positionals.map((p) => hidden.get(p) ?? p) };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function checkArity(spec: ClientCommand, args: string[]): void {
  const ok = spec.variadic ? args.length >= spec.args : args.length === spec.args;
  const pairsOk = !spec.pairs || (args.length - 1) % 2 === 0;
  if (!ok || !pairsOk) throw new UsageError(`usage: protokv ${spec.usage}`);
}

/** Renders an output as the text to print. */
export function render(out: Output, json: boolean | undefined): string {
  return json ? `${JSON.stringify(out.json)}\n` : out.human.map((l) => `${l}\n`).join('');
}

/** Asks on the terminal; false when standard input is not one (scripts must say --yes). */
async function askOnTerminal(question: string): Promise<boolean> {
  if (process.stdin.isTTY !== true) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((resolve) => rl.question(question, resolve));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Runs one client command; returns the process exit code. */
export async function clientCommand(name: string, argv: string[]): Promise<number> {
  const spec = CLIENT_COMMANDS[name];
  if (spec === undefined) throw new Error(`unknown client command ${name}`);
  let kv: KvClient | undefined;
  try {
    const { values, positionals } = parseCommandArgs(argv);
    if (values.help) {
      process.stdout.write(`usage: protokv ${spec.usage} [options]\n\n${spec.summary}\n\n${CONNECTION_HELP}`);
      return 0;
    }
    checkArity(spec, positionals);
    const readStdin = stdinOnce();
    const value = valueReader(values.type ?? 'string', { readStdin, literal: values.literal });
    kv = await connect(await connectOptions(values));
    const out = await spec.run(kv, positionals, {
      value,
      options: values,
      emit: (o) => process.stdout.write(render(o, values.json)),
      confirm: (question) => askOnTerminal(question),
    });
    if (out !== undefined) process.stdout.write(render(out, values.json));
    return 0;
  } catch (err) {
    return reportError(err);
  } finally {
    await kv?.close().catch(() => {});
  }
}

/**
 * Prints each message of `sub` until it ends; resolves normally when it was ended on purpose,
 * rejects when it was lost (the process then exits 1).
 */
export async function printMessages(sub: Subscription, json: boolean | undefined, write: (text: string) => void): Promise<void> {
  for await (const message of sub) {
    write(json ? `${JSON.stringify(message.map(jsonValue))}\n` : `${message.map(humanValue).join(' ') || '(no values)'}\n`);
  }
}

/** Tells on stderr when the connection drops and comes back (messages published meanwhile are lost). */
export function reportConnection(kv: KvClient, write: (text: string) => void): void {
  kv.on('disconnect', (err) => write(`protokv: ${err.message}; reconnecting\n`));
  kv.on('reconnect', () => write('protokv: reconnected (messages published while disconnected are lost)\n'));
}

/** `protokv subscribe TOPIC`: prints each message until interrupted or the subscription ends. */
export async function subscribeCommand(argv: string[]): Promise<number> {
  let kv: KvClient | undefined;
  try {
    const { values, positionals } = parseCommandArgs(argv);
    if (values.help) {
      process.stdout.write(`usage: protokv subscribe TOPIC [options]\n\nprint each message published to TOPIC until Ctrl-C\n\n${CONNECTION_HELP}`);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('usage: protokv subscribe TOPIC');
    kv = await connect(await connectOptions(values, process.env, true));
    reportConnection(kv, (t) => process.stderr.write(t));
    const sub = await kv.subscribe(positionals[0]);
    if (!values.json) process.stderr.write(`subscribed to ${JSON.stringify(sub.topic)} as id ${sub.id}; Ctrl-C to stop\n`);
    const stop = (): void => void sub.unsubscribe();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      await printMessages(sub, values.json, (t) => process.stdout.write(t));
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return 0;
  } catch (err) {
    return reportError(err);
  } finally {
    await kv?.close().catch(() => {});
  }
}

/** Prints an error the way the CLI does and returns its exit code (2 for usage, 1 otherwise). */
export function reportError(err: unknown, write: (text: string) => void = (t) => process.stderr.write(t)): number {
  if (err instanceof UsageError) {
    write(`protokv: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ProtokvError) {
    write(`${err.message}\n`);
    return 1;
  }
  if (err instanceof ProtokvBaseError) {
    write(`protokv: ${err.message}\n`);
    return 1;
  }
  write(`protokv: ${(err as Error).message}\n`);
  return 1;
}
