/**
 * Helpers the command modules share: running a protobuf request through the service for a RESP
 * command, turning its status into a RESP error, reading arguments as names and numbers, and
 * capping reply size.
 */
import type { CommandRequest, CommandResponse } from '../../protocol/generated/abi.js';
import { isPromise, type MaybePromise } from '../../storage/store.js';
import { command, ReplyError, replyErrors, type Call, type CommandSpec, type Deferred } from '../command.js';
import { decodeName } from '../names.js';
import type { ReplyWriter } from '../reply.js';
import { parseInteger } from '../values.js';

/**
 * Runs `request` through the service — hooks, metrics and tracing see it as they see a protobuf
 * request — and renders the response with `render` when its status is 200, with `notFound` when
 * it is 404 and `notFound` is given. Any other status becomes `-ERR <message>`.
 */
export function viaService(
  call: Call,
  request: CommandRequest,
  render: (out: ReplyWriter, response: CommandResponse) => void,
  notFound?: (out: ReplyWriter) => void,
): void | Promise<Deferred> {
  const result = call.server.service.execute(request, call.client.context);
  if (!isPromise(result)) {
    renderResponse(call.out, result, render, notFound);
    return;
  }
  return result.then((response) => (out: ReplyWriter) => renderResponse(out, response, render, notFound));
}

function renderResponse(
  out: ReplyWriter,
  response: CommandResponse,
  render: (out: ReplyWriter, response: CommandResponse) => void,
  notFound: ((out: ReplyWriter) => void) | undefined,
): void {
  if (response.status === 200) render(out, response);
  else if (response.status === 404 && notFound !== undefined) notFound(out);
  else out.error(`ERR ${response.message}`);
}

/** Awaits every promise among `results` (staying synchronous when there are none). */
export function all<T>(results: MaybePromise<T>[]): MaybePromise<T[]> {
  return results.some(isPromise) ? Promise.all(results) : (results as T[]);
}

/** Applies `fn` now, or when the value resolves. */
export function then<T, R>(value: MaybePromise<T>, fn: (v: T) => MaybePromise<R>): MaybePromise<R> {
  return isPromise(value) ? value.then(fn) : fn(value);
}

/** Every item of a synchronous or asynchronous iterable (a store's `iterate`). */
export function collect<T>(items: Iterable<T> | AsyncIterable<T>): MaybePromise<T[]> {
  if (Symbol.asyncIterator in items) {
    return (async () => {
      const out: T[] = [];
      for await (const x of items) out.push(x);
      return out;
    })();
  }
  return Array.from(items);
}

/** Argument `i` as a protokv name (table, key or channel). */
export function nameArg(call: Call, i: number): string {
  const a = call.args;
  return decodeName(a.bufs[i], a.starts[i], a.ends[i]);
}

/** Argument `i` as an int64 (Redis's `getLongLongFromObjectOrReply`). */
export function integerArg(call: Call, i: number, error = replyErrors.notInteger): bigint {
  const a = call.args;
  const n = parseInteger(a.bufs[i], a.starts[i], a.ends[i]);
  if (n === undefined) throw error();
  return n;
}

/**
 * Argument `i` as a safe JavaScript integer within [min, max] (Redis's
 * `getRangeLongFromObjectOrReply`): `error`, when given, for both a non-integer and an
 * out-of-range value; otherwise Redis's two default messages.
 */
export function rangeArg(call: Call, i: number, min: bigint, max: bigint, error?: () => ReplyError): number {
  const n = integerArg(call, i, error);
  if (n < min || n > max) throw error !== undefined ? error() : new ReplyError(`ERR value is out of range, value must between ${min} and ${max}`);
  return Number(n);
}

/** Throws a syntax error unless `count` keys are within the per-command limit. */
export function checkKeyCount(call: Call, count: number): void {
  const max = call.server.limits.maxKeysPerCommand;
  if (count > max) throw new ReplyError(`ERR Invalid command: ${count} keys exceed the maximum of ${max} per command`);
}

/**
 * Caps a reply being written: call {@link check} as elements are added; once the reply passes
 * the limit it is discarded and replaced by an error, and `check` returns false so the writer
 * stops. The limit is the maximum frame size, the same bound protobuf responses have.
 */
export class ReplyBudget {
  readonly #out: ReplyWriter;
  readonly #mark: number;
  readonly #limit: number;
  #exceeded = false;

  constructor(out: ReplyWriter, limit: number) {
    this.#out = out;
    this.#mark = out.mark();
    this.#limit = limit;
  }

  /** True while the reply is within the limit. */
  check(): boolean {
    if (this.#exceeded) return false;
    const size = this.#out.size - this.#mark;
    if (size <= this.#limit) return true;
    this.#exceeded = true;
    this.#out.truncate(this.#mark);
    this.#out.error(`ERR Response too large: more than ${this.#limit} bytes (use HSCAN or SCAN to read it in pages)`);
    return false;
  }
}

/** Redis's HELP reply for a container command: a usage line, the subcommands, then HELP. */
export function helpReply(out: ReplyWriter, container: string, lines: string[]): void {
  const text = [`${container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:`, ...lines, 'HELP', '    Print this help.'];
  out.array(text.length);
  for (const l of text) out.simple(l);
}

/** A container command (CLIENT, CONFIG, …) with its subcommands and a HELP subcommand. */
export function container(name: string, summary: string, group: string, since: string, subs: CommandSpec[], help: string[]): CommandSpec {
  const helpSpec = command({
    name: `${name}|help`, arity: 2, group, since, summary: 'Show helpful text about the different subcommands',
    flags: ['loading', 'stale'], aclCategories: ['@slow'],
    run: (call) => helpReply(call.out, name.toUpperCase(), help),
  });
  const specs = [...subs, helpSpec];
  return command({ name, arity: -2, group, since, summary, subcommands: new Map(specs.map((s) => [s.name.slice(name.length + 1), s])) });
}
