/**
 * The address of a Redis store, as the `store` setting writes it:
 *
 *   redis://[user:password@]host:port[?options]                    one Redis server
 *   redis-cluster://[user:password@]host:port,host:port,…[?options]  seed nodes of a Redis Cluster
 *   rediss://…, rediss-cluster://…                                  the same over TLS
 *
 * Options: `wait_replicas=N` (each write waits for N replicas before it is acknowledged),
 * `timeout_ms=MS` (longest a request waits for the engine before it fails with 503; default 2000),
 * `prefix=P` (prefix of every key and channel protokv uses, so that several deployments can share
 * one engine; default `protokv:`).
 *
 * Pure parsing, no I/O: the configuration loader validates the setting with it.
 */

/** One host and port. */
export interface RedisHost {
  readonly host: string;
  readonly port: number;
}

/** A parsed Redis store address. */
export interface RedisTarget {
  /** Redis Cluster (seed nodes) or a single server. */
  readonly cluster: boolean;
  readonly tls: boolean;
  readonly hosts: readonly RedisHost[];
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Replicas each write waits for before it is acknowledged (0: none). */
  readonly waitReplicas: number;
  /** Longest wait for the engine, per request, in milliseconds. */
  readonly timeoutMs: number;
  /** Prefix of every key and channel. */
  readonly prefix: string;
}

export const DEFAULT_REDIS_PREFIX = 'protokv:';
export const DEFAULT_REDIS_TIMEOUT_MS = 2000;
const MAX_WAIT_REPLICAS = 64;
const MAX_TIMEOUT_MS = 600_000;
/** Braces would break the hash tags; glob characters would break the key patterns. */
const PREFIX_PATTERN = /^[A-Za-z0-9_.:\-/]{0,64}$/;

const SCHEMES: Record<string, { cluster: boolean; tls: boolean }> = {
  'redis:': { cluster: false, tls: false },
  'rediss:': { cluster: false, tls: true },
  'redis-cluster:': { cluster: true, tls: false },
  'rediss-cluster:': { cluster: true, tls: true },
};

/** True when `text` names a Redis store (by its scheme). */
export function isRedisUrl(text: string): boolean {
  const colon = text.indexOf('://');
  return colon > 0 && Object.hasOwn(SCHEMES, `${text.slice(0, colon).toLowerCase()}:`);
}

/** A store address that is not valid; the message says what a valid one looks like. */
export class RedisUrlError extends Error {
  override name = 'RedisUrlError';
}

/** Parses a store address; throws {@link RedisUrlError} naming the problem. */
export function parseRedisUrl(text: string): RedisTarget {
  const sep = text.indexOf('://');
  const scheme = sep > 0 ? SCHEMES[`${text.slice(0, sep).toLowerCase()}:`] : undefined;
  if (scheme === undefined) {
    throw new RedisUrlError('expected redis://HOST:PORT, redis-cluster://HOST:PORT,HOST:PORT,… or their rediss:// TLS forms');
  }
  let rest = text.slice(sep + 3);
  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) throw new RedisUrlError('a store address has no #fragment');
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest.includes('/')) throw new RedisUrlError('a store address has no path (database numbers are not supported)');

  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo, 'user name');
    if (colon >= 0) password = decode(userinfo.slice(colon + 1), 'password');
    else if (user !== '') password = user; // redis://secret@host: the password alone, as redis-cli reads it
    if (colon >= 0 && user !== '') username = user;
  }

  const hosts = rest.split(',').map(parseHost);
  if (!scheme.cluster && hosts.length > 1) {
    throw new RedisUrlError('redis:// names one server; list several seed nodes with redis-cluster://');
  }

  let waitReplicas = 0;
  let timeoutMs = DEFAULT_REDIS_TIMEOUT_MS;
  let prefix = DEFAULT_REDIS_PREFIX;
  const seen = new Set<string>();
  for (const [name, value] of new URLSearchParams(query)) {
    if (seen.has(name)) throw new RedisUrlError(`option ${name} is given twice`);
    seen.add(name);
    switch (name) {
      case 'wait_replicas':
        waitReplicas = integer(name, value, 0, MAX_WAIT_REPLICAS);
        break;
      case 'timeout_ms':
        timeoutMs = integer(name, value, 1, MAX_TIMEOUT_MS);
        break;
      case 'prefix':
        if (!PREFIX_PATTERN.test(value)) {
          throw new RedisUrlError('prefix: expected at most 64 letters, digits and _ . : - / characters');
        }
        prefix = value;
        break;
      default:
        throw new RedisUrlError(`unknown option ${JSON.stringify(name)}; known: wait_replicas, timeout_ms, prefix`);
    }
  }
  return { ...scheme, hosts, username, password, waitReplicas, timeoutMs, prefix };
}

/** The address without its password, for logs and error messages. */
export function describeRedisTarget(target: RedisTarget): string {
  const scheme = `${target.tls ? 'rediss' : 'redis'}${target.cluster ? '-cluster' : ''}://`;
  const user = target.username !== undefined ? `${target.username}:***@` : target.password !== undefined ? ':***@' : '';
  const hosts = target.hosts.map((h) => `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`).join(',');
  return `${scheme}${user}${hosts}`;
}

/** `text` with the password of a store address (if any) replaced by `***`, for messages. */
export function redactRedisUrl(text: string): string {
  return text.replace(/^([a-z-]+:\/\/)([^@/?#]*)@/i, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon >= 0 ? `${userinfo.slice(0, colon)}:***` : '***'}@`;
  });
}

function parseHost(text: string): RedisHost {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port < 1 || port > 65_535) {
    throw new RedisUrlError(`${JSON.stringify(text)} is not HOST:PORT (IPv6 in brackets, port 1 to 65535)`);
  }
  return { host: m[1] ?? m[2], port };
}

function integer(name: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new RedisUrlError(`${name}: expected a whole number from ${min} to ${max}`);
  return n;
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`the ${what} is not valid percent-encoding`);
  }
}
