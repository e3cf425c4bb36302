/**
 * The client sub-commands of the CLI (`protokv hset …`, `hget`, … `publish`, `subscribe`):
 * one table row per command says how to read its arguments and how to print its answer.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { connect, type ConnectOptions, type KvClient } from '../client/client.js';
import { ProtokvError } from '../client/errors.js';
import { parseListenAddress } from '../config.js';
import type { KvValue } from '../protocol/values.js';
import { humanValue, jsonValue } from './output.js';

const VALUE_TYPES = ['string', 'int', 'float', 'bool', 'bytes'] as const;
type ValueType = (typeof VALUE_TYPES)[number];

/** What a command prints: lines for people, a JSON document for `--json`. */
interface Output {
  human: string[];
  json: unknown;
}

interface ClientCommand {
  usage: string;
  summary: string;
  /** Positional arguments: exact count, or a minimum when `variadic`. */
  args: number;
  variadic?: boolean;
  /** Whether the trailing arguments come in KEY VALUE pairs. */
  pairs?: boolean;
  run(kv: KvClient, args: string[], parse: (text: string) => KvValue): Promise<Output>;
}

const one = (v: KvValue | undefined): Output => ({ human: [humanValue(v)], json: jsonValue(v) });
const many = (vs: (KvValue | undefined)[]): Output => ({ human: vs.map(humanValue), json: vs.map(jsonValue) });
const bool = (b: boolean): Output => ({ human: [String(b)], json: b });
const bools = (bs: boolean[]): Output => ({ human: bs.map(String), json: bs });
const OK: Output = { human: ['OK'], json: { ok: true } };

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
    summary: 'print the values of the KEYs, in order ((empty) when missing)',
    args: 2,
    variadic: true,
    run: async (kv, [t, ...keys]) => many(await kv.hmget(t, keys)),
  },
  hset: {
    usage: 'hset TABLE KEY VALUE',
    summary: 'store VALUE; print the previous value',
    args: 3,
    run: async (kv, [t, k, v], parse) => one(await kv.hset(t, k, parse(v))),
  },
  hmset: {
    usage: 'hmset TABLE KEY VALUE [KEY VALUE]...',
    summary: 'store every pair atomically; print the previous values',
    args: 3,
    variadic: true,
    pairs: true,
    run: async (kv, [t, ...rest], parse) => {
      const pairs: [string, KvValue][] = [];
      for (let i = 0; i < rest.length; i += 2) pairs.push([rest[i], parse(rest[i + 1])]);
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
    run: async (kv, [topic, ...values], parse) => {
      await kv.publish(topic, ...values.map(parse));
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
};

export const CONNECTION_HELP = `Connection options (every client command):
  --server HOST:PORT       server address (default 127.0.0.1:9527, env PROTOKV_SERVER)
  --tls-ca FILE            connect with TLS, trusting this CA
  --tls-cert FILE          client certificate, for mutual TLS
  --tls-key FILE           client private key, for mutual TLS
  --tls-servername NAME    name the server certificate must match (default: the host)
  --json                   print JSON instead of readable output
  --type TYPE              how VALUE arguments are read: string (default), int, float, bool, bytes (base64)
`;

class UsageError extends Error {}

const OPTIONS = {
  server: { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-servername': { type: 'string' },
  json: { type: 'boolean' },
  type: { type: 'string', short: 't' },
  help: { type: 'boolean', short: 'h' },
} as const;

type ParsedOptions = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Reads a VALUE argument as the chosen `--type`. */
export function valueParser(type: string): (text: string) => KvValue {
  if (!(VALUE_TYPES as readonly string[]).includes(type)) {
    throw new UsageError(`invalid --type "${type}": expected one of ${VALUE_TYPES.join(', ')}`);
  }
  return (text) => parseValue(text, type as ValueType);
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

/** Parses the connection flags into client options. */
export async function connectOptions(values: ParsedOptions): Promise<ConnectOptions> {
  const address = values.server ?? process.env.PROTOKV_SERVER ?? '127.0.0.1:9527';
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseListenAddress(address));
  } catch (err) {
    throw new UsageError(`invalid --server "${address}": ${(err as Error).message}`);
  }
  const files = [values['tls-ca'], values['tls-cert'], values['tls-key']];
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key must be given together');
  }
  const useTls = files.some((f) => f !== undefined) || values['tls-servername'] !== undefined;
  if (!useTls) return { host, port };
  const read = (f: string | undefined): Promise<Buffer | undefined> => (f === undefined ? Promise.resolve(undefined) : readFile(f));
  const [ca, cert, key] = await Promise.all(files.map(read));
  return { host, port, tls: { ca, cert, key, servername: values['tls-servername'] } };
}

/** Negative numbers are values, not options: `protokv hset t k -5 --type int`. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

function parse(argv: string[]): { values: ParsedOptions; positionals: string[] } {
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

function checkArity(spec: ClientCommand, args: string[]): void {
  const ok = spec.variadic ? args.length >= spec.args : args.length === spec.args;
  const pairsOk = !spec.pairs || (args.length - 1) % 2 === 0;
  if (!ok || !pairsOk) throw new UsageError(`usage: protokv ${spec.usage}`);
}

/** Runs one client command; returns the process exit code. */
export async function clientCommand(name: string, argv: string[]): Promise<number> {
  const spec = CLIENT_COMMANDS[name];
  if (spec === undefined) throw new Error(`unknown client command ${name}`);
  let kv: KvClient | undefined;
  try {
    const { values, positionals } = parse(argv);
    if (values.help) {
      process.stdout.write(`usage: protokv ${spec.usage} [options]\n\n${spec.summary}\n\n${CONNECTION_HELP}`);
      return 0;
    }
    checkArity(spec, positionals);
    const parseValueArg = valueParser(values.type ?? 'string');
    kv = await connect(await connectOptions(values));
    const out = await spec.run(kv, positionals, parseValueArg);
    process.stdout.write(values.json ? `${JSON.stringify(out.json)}\n` : out.human.map((l) => `${l}\n`).join(''));
    return 0;
  } catch (err) {
    return reportError(err);
  } finally {
    await kv?.close().catch(() => {});
  }
}

/** `protokv subscribe TOPIC`: prints each message until interrupted or the subscription ends. */
export async function subscribeCommand(argv: string[]): Promise<number> {
  let kv: KvClient | undefined;
  try {
    const { values, positionals } = parse(argv);
    if (values.help) {
      process.stdout.write(`usage: protokv subscribe TOPIC [options]\n\nprint each message published to TOPIC until Ctrl-C\n\n${CONNECTION_HELP}`);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('usage: protokv subscribe TOPIC');
    kv = await connect(await connectOptions(values));
    const sub = await kv.subscribe(positionals[0]);
    if (!values.json) process.stderr.write(`subscribed to ${JSON.stringify(sub.topic)} as id ${sub.id}; Ctrl-C to stop\n`);
    const stop = (): void => void sub.unsubscribe().catch(() => {});
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    for await (const message of sub) {
      process.stdout.write(
        values.json ? `${JSON.stringify(message.map(jsonValue))}\n` : `${message.map(humanValue).join(' ') || '(no values)'}\n`,
      );
    }
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    return 0;
  } catch (err) {
    return reportError(err);
  } finally {
    await kv?.close().catch(() => {});
  }
}

function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`protokv: ${err.message}\n`);
    return 2;
  }
  if (err instanceof ProtokvError) {
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  const e = err as NodeJS.ErrnoException;
  process.stderr.write(`protokv: ${e.code === 'ECONNREFUSED' ? `cannot connect: ${e.message}` : e.message}\n`);
  return 1;
}
