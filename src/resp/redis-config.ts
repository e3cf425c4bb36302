/**
 * The Redis configuration parameters the RESP listener answers CONFIG GET and CONFIG SET for.
 *
 * Most report how protokv is configured, in Redis's terms (`maxclients` is `--max-connections`,
 * `proto-max-bulk-len` the maximum frame size, `appendonly` whether the store is persistent…);
 * they change only with protokv's own settings, so CONFIG SET refuses them — except to the value
 * they already have, which changes nothing and succeeds. The `hash-max-listpack-*` limits are
 * settable: protokv keeps one representation of every table, and they decide only which encoding
 * OBJECT ENCODING reports (the one Redis would use).
 */
import { ReplyError } from './command.js';
import { Glob } from './glob.js';

export interface ConfigParam {
  readonly name: string;
  readonly aliases?: readonly string[];
  get(): string;
  /** Validates and applies `value`; returns an error reason, or `undefined` on success. Absent: read-only. */
  set?(value: string): string | undefined;
  /** Why CONFIG SET refuses a different value (read-only parameters). */
  readonly readOnlyReason?: string;
}

/** An integer parameter settable within [min, max]. */
export function integerParam(name: string, aliases: string[], initial: number, min: number, max: number): ConfigParam & { value: number } {
  const param = {
    name,
    aliases,
    value: initial,
    get: () => String(param.value),
    set(text: string): string | undefined {
      if (!/^-?\d+$/.test(text)) return "argument couldn't be parsed into an integer";
      const n = Number(text);
      if (!Number.isSafeInteger(n) || n < min || n > max) return `argument must be between ${min} and ${max} inclusive`;
      param.value = n;
      return undefined;
    },
  };
  return param;
}

/** A parameter reporting a protokv setting. */
export function fixedParam(name: string, value: string | (() => string), readOnlyReason?: string): ConfigParam {
  return { name, get: typeof value === 'string' ? () => value : value, readOnlyReason };
}

export class RedisConfig {
  readonly #params: ConfigParam[];
  readonly #byName = new Map<string, ConfigParam>();

  constructor(params: ConfigParam[]) {
    this.#params = params;
    for (const p of params) {
      this.#byName.set(p.name, p);
      for (const a of p.aliases ?? []) this.#byName.set(a, p);
    }
  }

  /** The current value of parameter `name` (which must exist). */
  value(name: string): string {
    const p = this.#byName.get(name);
    if (p === undefined) throw new Error(`no such parameter: ${name}`);
    return p.get();
  }

  /** CONFIG GET: name/value pairs for every parameter a pattern matches, each once, in table order. */
  get(patterns: readonly Buffer[]): [string, string][] {
    const out: [string, string][] = [];
    const seen = new Set<string>();
    const add = (name: string, p: ConfigParam): void => {
      if (seen.has(name)) return;
      seen.add(name);
      out.push([name, p.get()]);
    };
    for (const raw of patterns) {
      const text = raw.toString('latin1').toLowerCase();
      if (!/[*?[]/.test(text)) {
        const p = this.#byName.get(text);
        if (p !== undefined) add(text, p);
        continue;
      }
      const glob = new Glob(raw, true);
      for (const p of this.#params) {
        for (const name of [p.name, ...(p.aliases ?? [])]) if (glob.test(Buffer.from(name))) add(name, p);
      }
    }
    return out;
  }

  /** CONFIG SET of name/value pairs, all or nothing; throws a ReplyError naming the first bad one. */
  set(pairs: readonly [Buffer, Buffer][]): void {
    const failed = (name: string, reason: string) => new ReplyError(`ERR CONFIG SET failed (possibly related to argument '${name}') - ${reason}`);
    const seen = new Set<ConfigParam>();
    const named: [ConfigParam, string, Buffer][] = [];
    for (const [rawName, rawValue] of pairs) {
      const name = rawName.toString('latin1').toLowerCase();
      const p = this.#byName.get(name);
      if (p === undefined) throw new ReplyError(`ERR Unknown option or number of arguments for CONFIG SET - '${rawName.toString('latin1')}'`);
      if (seen.has(p)) throw failed(name, 'duplicate parameter');
      seen.add(p);
      named.push([p, name, rawValue]);
    }
    const changes: [ConfigParam, string, string][] = [];
    for (const [p, name, rawValue] of named) {
      const value = rawValue.toString('utf8');
      if (p.set === undefined) {
        if (value !== p.get()) throw failed(name, p.readOnlyReason ?? "can't set immutable config");
        continue;
      }
      changes.push([p, name, value]);
    }
    const applied: [ConfigParam, string][] = [];
    for (const [p, name, value] of changes) {
      const previous = p.get();
      const reason = p.set!(value);
      if (reason !== undefined) {
        for (const [q, old] of applied.reverse()) q.set!(old);
        throw failed(name, reason);
      }
      applied.push([p, previous]);
    }
  }
}
