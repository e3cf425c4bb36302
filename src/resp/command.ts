/**
 * What a RESP command is: its Redis metadata (arity, flags, key positions, documentation — what
 * COMMAND and COMMAND DOCS report) and its handler.
 *
 * A handler writes its reply to `call.out` before returning, or — when it must wait for the
 * store — returns a promise of a {@link Deferred} renderer that the connection runs, in request
 * order, once the promise settles. It never writes to `call.out` after returning.
 */
import { isPromise, type MaybePromise } from '../storage/store.js';
import type { Args } from './parser.js';
import type { ReplyWriter } from './reply.js';
import type { ClientState } from './client.js';
import type { RespContext } from './context.js';

/** Writes a reply once an asynchronous result is available. */
export type Deferred = (out: ReplyWriter) => void;

/** One execution of a command. */
export interface Call {
  readonly args: Args;
  readonly out: ReplyWriter;
  readonly client: ClientState;
  readonly server: RespContext;
  /** The command being run (for a subcommand, the subcommand). */
  readonly command: CommandSpec;
}

export type Handler = (call: Call) => void | Promise<Deferred>;

/** An argument's documentation (COMMAND DOCS), as Redis describes it. */
export interface ArgDoc {
  readonly name: string;
  readonly type: 'key' | 'string' | 'integer' | 'double' | 'pattern' | 'pure-token' | 'oneof' | 'block';
  readonly token?: string;
  readonly optional?: boolean;
  readonly multiple?: boolean;
  readonly arguments?: readonly ArgDoc[];
}

export interface CommandSpec {
  /** Lower case; a subcommand is `container|sub`. */
  readonly name: string;
  /** Redis's arity: exact count when positive, minimum count when negative (the command name included). */
  readonly arity: number;
  readonly flags: readonly string[];
  readonly aclCategories: readonly string[];
  readonly firstKey: number;
  readonly lastKey: number;
  readonly keyStep: number;
  readonly group: string;
  readonly since: string;
  readonly summary: string;
  readonly complexity: string;
  readonly args: readonly ArgDoc[];
  /** Allowed while a RESP2 client is subscribed. */
  readonly inSubscribedMode?: boolean;
  readonly run?: Handler;
  readonly subcommands?: ReadonlyMap<string, CommandSpec>;
}

/** A user-facing error reply; `text` starts with its code (`ERR …`, `NOPROTO …`). */
export class ReplyError extends Error {
  constructor(readonly text: string) {
    super(text);
    this.name = 'ReplyError';
  }
}

/** Common Redis errors, with Redis's wording. */
export const replyErrors = {
  syntax: () => new ReplyError('ERR syntax error'),
  notInteger: () => new ReplyError('ERR value is not an integer or out of range'),
  notFloat: () => new ReplyError('ERR value is not a valid float'),
  outOfRange: () => new ReplyError('ERR value is out of range'),
  arity: (name: string) => new ReplyError(`ERR wrong number of arguments for '${name}' command`),
};

/**
 * Runs `then` on a result now, or returns a promise of a renderer when the result is a promise:
 * the shape a handler returns.
 */
export function reply<T>(call: Call, result: MaybePromise<T>, render: (out: ReplyWriter, value: T) => void): void | Promise<Deferred> {
  if (!isPromise(result)) {
    render(call.out, result);
    return;
  }
  return result.then((value) => (out: ReplyWriter) => render(out, value));
}

/** Builds a command spec with defaults for the metadata a command does not care about. */
export function command(spec: Partial<CommandSpec> & Pick<CommandSpec, 'name' | 'arity' | 'summary' | 'group'>): CommandSpec {
  return {
    flags: [],
    aclCategories: [],
    firstKey: 0,
    lastKey: 0,
    keyStep: 0,
    since: '1.0.0',
    complexity: 'O(1)',
    args: [],
    ...spec,
  };
}

/** Shorthands for argument docs. */
export const arg = {
  key: (name = 'key', extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'key', ...extra }),
  string: (name: string, extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'string', ...extra }),
  integer: (name: string, extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'integer', ...extra }),
  double: (name: string, extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'double', ...extra }),
  pattern: (name: string, extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'pattern', ...extra }),
  token: (token: string, extra: Partial<ArgDoc> = {}): ArgDoc => ({ name: token.toLowerCase(), type: 'pure-token', token, ...extra }),
  block: (name: string, args: ArgDoc[], extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'block', arguments: args, ...extra }),
  oneof: (name: string, args: ArgDoc[], extra: Partial<ArgDoc> = {}): ArgDoc => ({ name, type: 'oneof', arguments: args, ...extra }),
};
