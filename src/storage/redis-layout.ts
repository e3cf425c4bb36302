/**
 * Where protokv keeps things in Redis. Every name starts with the deployment's prefix, so that
 * several deployments (or test runs) can share one engine.
 *
 * - A table is one Redis hash: `<prefix>{t:<table>}`; its fields are the keys (UTF-8), its values
 *   the protobuf encoding of `Value` (so types survive).
 * - A topic is one sharded pub/sub channel, `<prefix>{p:<topic>}`, and one hash of its live
 *   subscriptions, `<prefix>{p:<topic>}:subs` (subscription id → node id).
 * - `<prefix>ids` counts subscription ids and node ids handed out.
 *
 * The part in braces is the Redis Cluster hash tag: a topic's channel and subscription hash share
 * it, hence a slot, hence one node, so one script can touch both. It is never empty (an empty tag
 * would hash the whole name). Names are arbitrary UTF-8, so `%`, `{` and `}` are percent-escaped:
 * a `}` would end the tag early, and escaping keeps the mapping reversible for `TABLES`.
 */

/** Escapes a table or topic name for use inside a hash tag. */
export function escapeName(name: string): string {
  return /[%{}]/.test(name) ? name.replace(/[%{}]/g, (c) => (c === '%' ? '%25' : c === '{' ? '%7B' : '%7D')) : name;
}

/** Reverses {@link escapeName}; `undefined` for text that escapeName cannot produce. */
export function unescapeName(text: string): string | undefined {
  if (/[{}]/.test(text)) return undefined;
  if (!text.includes('%')) return text;
  let invalid = false;
  const out = text.replace(/%(..)?/g, (_m, hex: string | undefined) => {
    if (hex === '25') return '%';
    if (hex === '7B') return '{';
    if (hex === '7D') return '}';
    invalid = true;
    return '';
  });
  return invalid ? undefined : out;
}

/** The names protokv uses under one prefix. */
export class RedisLayout {
  readonly #tablePrefix: string;
  /** `SCAN MATCH` pattern of every table hash. */
  readonly tablePattern: string;
  /** The counter of subscription and node ids. */
  readonly idsKey: string;

  constructor(readonly prefix: string) {
    this.#tablePrefix = `${prefix}{t:`;
    this.tablePattern = `${this.#tablePrefix}*`;
    this.idsKey = `${prefix}ids`;
  }

  /** The hash holding `table`. */
  tableKey(table: string): string {
    return `${this.#tablePrefix}${escapeName(table)}}`;
  }

  /** The table a hash name found by `SCAN` holds, or `undefined` when it is not one of ours. */
  tableOf(key: string): string | undefined {
    if (!key.startsWith(this.#tablePrefix) || !key.endsWith('}')) return undefined;
    return unescapeName(key.slice(this.#tablePrefix.length, -1));
  }

  /** The sharded channel carrying `topic`. */
  topicChannel(topic: string): string {
    return `${this.prefix}{p:${escapeName(topic)}}`;
  }

  /** The hash of `topic`'s live subscriptions (same slot as its channel). */
  topicSubscriptions(topic: string): string {
    return `${this.prefix}{p:${escapeName(topic)}}:subs`;
  }

  /** The topic a channel name carries, or `undefined` when it is not one of ours. */
  topicOf(channel: string): string | undefined {
    const head = `${this.prefix}{p:`;
    if (!channel.startsWith(head) || !channel.endsWith('}')) return undefined;
    return unescapeName(channel.slice(head.length, -1));
  }
}
