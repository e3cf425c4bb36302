/**
 * The console's command line: a line such as `HSET users born int:1815` becomes a protokv
 * request, and any response becomes lines to show, each value with its type.
 *
 * Words are separated by spaces; `"double quotes"` (JSON escapes) or `'single quotes'` keep
 * spaces. Table names, keys and topics are always text. A value is text unless written as a
 * typed literal: `int:42`, `float:1.5`, `bool:true`, `bin:AQID` (base64), or `null` for the
 * empty value; a quoted value is always text, so `"int:42"` stores those six characters.
 */
import type { CommandRequest, CommandResponse, Value } from '../protocol/generated/abi.js';
import { requests } from '../protocol/requests.js';
import { fromValue, type KvValue } from '../protocol/values.js';
import { displayValue, formatFloat, parseValueText, typeOf, type ValueType } from './value-text.js';

/** One word of a command line. */
export interface Token {
  text: string;
  /** Written in quotes: a value that is always text. */
  quoted: boolean;
}

/** A line that cannot be run; the message says what is wrong and how to write it. */
export class CommandLineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandLineError';
  }
}

/** Splits a line into words, honouring quotes; throws `CommandLineError` for an unclosed quote. */
export function tokenize(line: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"') {
      let end = i + 1;
      while (end < line.length && line[end] !== '"') end += line[end] === '\\' ? 2 : 1;
      if (end >= line.length) throw new CommandLineError(`unclosed " starting at column ${i + 1}`);
      let text: string;
      try {
        text = JSON.parse(line.slice(i, end + 1)) as string;
      } catch {
        throw new CommandLineError(`invalid escape in the "…" starting at column ${i + 1} (JSON escapes: \\n, \\t, \\", \\\\, \\u00e9)`);
      }
      tokens.push({ text, quoted: true });
      i = end + 1;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new CommandLineError(`unclosed ' starting at column ${i + 1}`);
      tokens.push({ text: line.slice(i + 1, end), quoted: true });
      i = end + 1;
    } else {
      let end = i;
      while (end < line.length && !/\s/.test(line[end])) end++;
      tokens.push({ text: line.slice(i, end), quoted: false });
      i = end;
    }
  }
  return tokens;
}

const TYPED_LITERAL = /^(int|integer|float|bool|bin|binary|str|string):([\s\S]*)$/;
const LITERAL_TYPES: Record<string, ValueType> = {
  int: 'integer',
  integer: 'integer',
  float: 'float',
  bool: 'bool',
  bin: 'binary',
  binary: 'binary',
  str: 'string',
  string: 'string',
};

/** Reads a value word: quoted text, a typed literal, `null`, or else text. */
export function parseValueToken(token: Token): KvValue {
  if (token.quoted) return token.text;
  if (token.text === 'null') return null;
  const typed = TYPED_LITERAL.exec(token.text);
  if (typed === null) return token.text;
  try {
    return parseValueText(LITERAL_TYPES[typed[1]], typed[2]);
  } catch (err) {
    throw new CommandLineError((err as Error).message);
  }
}

/** What a command line asks the console to do. */
export type ParsedLine =
  | { kind: 'request'; command: string; request: CommandRequest }
  | { kind: 'subscribe'; topic: string }
  | { kind: 'help' }
  | { kind: 'clear' }
  | { kind: 'empty' };

interface CommandSpec {
  usage: string;
  summary: string;
  /** Words after the command name: exact count, or a minimum when `variadic`. */
  args: number;
  variadic?: boolean;
  /** The trailing words come in KEY VALUE pairs (after the first). */
  pairs?: boolean;
  /** Words beyond `args` allowed at most (optional arguments). */
  optional?: number;
  build(args: Token[]): ParsedLine;
}

const text = (tokens: Token[]) => tokens.map((t) => t.text);
const req = (command: string, request: CommandRequest): ParsedLine => ({ kind: 'request', command, request });

function whole(token: Token | undefined, what: string, min: number, max: number, fallback: number): number {
  if (token === undefined) return fallback;
  if (!/^\d+$/.test(token.text) || Number(token.text) < min || Number(token.text) > max) {
    throw new CommandLineError(`${what} must be a whole number from ${min} to ${max}, not ${JSON.stringify(token.text)}`);
  }
  return Number(token.text);
}

/** Every command the line understands, by upper-case name, in the order help lists them. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  HGET: { usage: 'HGET table key', summary: 'the value of key', args: 2, build: ([t, k]) => req('HGET', requests.hget(t.text, k.text)) },
  HGETALL: { usage: 'HGETALL table', summary: 'every pair of the table', args: 1, build: ([t]) => req('HGETALL', requests.hgetall(t.text)) },
  HMGET: {
    usage: 'HMGET table key…',
    summary: 'the values of the keys, in order',
    args: 2,
    variadic: true,
    build: ([t, ...keys]) => req('HMGET', requests.hmget(t.text, text(keys))),
  },
  HSET: {
    usage: 'HSET table key value',
    summary: 'store a value; answers the previous one',
    args: 3,
    build: ([t, k, v]) => req('HSET', requests.hset(t.text, k.text, parseValueToken(v))),
  },
  HMSET: {
    usage: 'HMSET table key value [key value]…',
    summary: 'store pairs atomically',
    args: 3,
    variadic: true,
    pairs: true,
    build: ([t, ...rest]) => {
      const pairs: [string, KvValue][] = [];
      for (let i = 0; i < rest.length; i += 2) pairs.push([rest[i].text, parseValueToken(rest[i + 1])]);
      return req('HMSET', requests.hmset(t.text, pairs));
    },
  },
  HDEL: { usage: 'HDEL table key', summary: 'remove a key; answers the removed value', args: 2, build: ([t, k]) => req('HDEL', requests.hdel(t.text, k.text)) },
  HMDEL: {
    usage: 'HMDEL table key…',
    summary: 'remove keys atomically',
    args: 2,
    variadic: true,
    build: ([t, ...keys]) => req('HMDEL', requests.hmdel(t.text, text(keys))),
  },
  HEXIST: { usage: 'HEXIST table key', summary: 'whether the key exists', args: 2, build: ([t, k]) => req('HEXIST', requests.hexist(t.text, k.text)) },
  HMEXIST: {
    usage: 'HMEXIST table key…',
    summary: 'whether each key exists',
    args: 2,
    variadic: true,
    build: ([t, ...keys]) => req('HMEXIST', requests.hmexist(t.text, text(keys))),
  },
  HLEN: { usage: 'HLEN table', summary: 'the number of keys', args: 1, build: ([t]) => req('HLEN', requests.hlen(t.text)) },
  HSCAN: {
    usage: 'HSCAN table [cursor] [count]',
    summary: 'one page of the table; answers the next cursor',
    args: 1,
    optional: 2,
    build: ([t, cursor, count]) => req('HSCAN', requests.hscan(t.text, cursor?.text ?? '', whole(count, 'count', 0, 0xffff_ffff, 0))),
  },
  TABLES: {
    usage: 'TABLES [cursor] [count]',
    summary: 'one page of the table names with their key counts',
    args: 0,
    optional: 2,
    build: ([cursor, count]) => req('TABLES', requests.tables(cursor?.text ?? '', whole(count, 'count', 0, 0xffff_ffff, 0))),
  },
  HDROP: { usage: 'HDROP table', summary: 'remove the whole table', args: 1, build: ([t]) => req('HDROP', requests.hdrop(t.text)) },
  PUBLISH: {
    usage: 'PUBLISH topic [value]…',
    summary: 'send values to every subscriber of the topic',
    args: 1,
    variadic: true,
    build: ([topic, ...values]) => req('PUBLISH', requests.publish(topic.text, ...values.map(parseValueToken))),
  },
  SUBSCRIBE: {
    usage: 'SUBSCRIBE topic',
    summary: 'watch the topic (its messages show in Pub/Sub)',
    args: 1,
    build: ([topic]) => ({ kind: 'subscribe', topic: topic.text }),
  },
  UNSUBSCRIBE: {
    usage: 'UNSUBSCRIBE topic id',
    summary: 'end a subscription, from any client',
    args: 2,
    build: ([topic, id]) => req('UNSUBSCRIBE', requests.unsubscribe(topic.text, whole(id, 'id', 1, 0xffff_ffff, 0))),
  },
  HELP: { usage: 'HELP', summary: 'this list', args: 0, build: () => ({ kind: 'help' }) },
  CLEAR: { usage: 'CLEAR', summary: 'clear the output', args: 0, build: () => ({ kind: 'clear' }) },
};

/** Reads a command line; throws `CommandLineError` saying what is wrong. */
export function parseCommandLine(line: string): ParsedLine {
  const tokens = tokenize(line);
  if (tokens.length === 0) return { kind: 'empty' };
  const [head, ...args] = tokens;
  const name = head.text.toUpperCase();
  const spec = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (spec === undefined || head.quoted) {
    throw new CommandLineError(`unknown command ${JSON.stringify(head.text)}; HELP lists the commands`);
  }
  const max = spec.variadic ? Infinity : spec.args + (spec.optional ?? 0);
  const pairsOff = spec.pairs && (args.length - 1) % 2 !== 0;
  if (args.length < spec.args || args.length > max || pairsOff) {
    throw new CommandLineError(`usage: ${spec.usage}`);
  }
  return spec.build(args);
}

/** One value of a response, ready to show. */
export interface ShownValue {
  /** The key of a pair, absent for a bare value. */
  key?: string;
  type: ValueType;
  text: string;
}

/** A response ready to show: its status, and each value and pair with its type. */
export interface ShownResponse {
  status: number;
  ok: boolean;
  message: string;
  values: ShownValue[];
  pairs: ShownValue[];
}

/** How a value reads in the command line's output: text quoted, so spaces and emptiness show. */
export function showValue(value: Value | undefined, maxChars = 2000): ShownValue {
  const v = fromValue(value);
  const type = typeOf(v);
  let shown: string;
  if (typeof v === 'string') shown = JSON.stringify(v.length > maxChars ? `${v.slice(0, maxChars)}…` : v);
  else if (typeof v === 'number') shown = formatFloat(v);
  else shown = displayValue(v, maxChars);
  return { type, text: shown };
}

/** Lays a response out for display. */
export function showResponse(response: CommandResponse): ShownResponse {
  return {
    status: response.status,
    ok: response.status >= 200 && response.status < 300,
    message: response.message,
    values: response.values.map((v) => showValue(v)),
    pairs: response.pairs.map((p) => ({ key: p.key, ...showValue(p.value) })),
  };
}
