/**
 * The console's live figures, computed from two consecutive scrapes of `/metrics`: rates from
 * counter differences, latency percentiles from histogram bucket differences (as PromQL's
 * `histogram_quantile` over the interval), and gauges as they are.
 */
import { samplesOf, sumBy, total, type Scrape } from './prometheus.js';

/** The metric names the figures read (SPEC §6 and prom-client's defaults). */
export const METRICS = {
  commands: 'protokv_commands_total',
  duration: 'protokv_command_duration_seconds_bucket',
  connections: 'protokv_connections',
  subscriptions: 'protokv_subscriptions',
  bytesReceived: 'protokv_bytes_received_total',
  bytesSent: 'protokv_bytes_sent_total',
  rss: 'process_resident_memory_bytes',
  heapUsed: 'nodejs_heap_size_used_bytes',
} as const;

export interface Percentiles {
  /** Seconds. */
  p50: number;
  p99: number;
}

/** What the console shows for one interval between scrapes. */
export interface Figures {
  /** Commands per second, by command, over the interval. */
  opsPerSecond: Map<string, number>;
  totalOpsPerSecond: number;
  /** Latency percentiles by command, over the interval (only commands that ran in it). */
  latency: Map<string, Percentiles>;
  /** Latency percentiles of every command together, over the interval. */
  latencyAll: Percentiles | undefined;
  /** Open connections by transport, now. */
  connections: Map<string, number>;
  subscriptions: number | undefined;
  rssBytes: number | undefined;
  heapUsedBytes: number | undefined;
  bytesReceivedPerSecond: number | undefined;
  bytesSentPerSecond: number | undefined;
}

/** Figures for the `seconds` between `before` and `now`; with no `before`, rates are zero. */
export function figuresBetween(before: Scrape | undefined, now: Scrape, seconds: number): Figures {
  const rate = (a: number | undefined, b: number | undefined): number | undefined => {
    if (b === undefined) return undefined;
    if (a === undefined || seconds <= 0) return 0;
    return increase(a, b) / seconds;
  };
  const opsNow = sumBy(now, METRICS.commands, 'command');
  const opsBefore = before === undefined ? new Map<string, number>() : sumBy(before, METRICS.commands, 'command');
  const opsPerSecond = new Map<string, number>();
  let totalOps = 0;
  for (const [command, count] of opsNow) {
    const r = rate(before === undefined ? undefined : (opsBefore.get(command) ?? 0), count) ?? 0;
    opsPerSecond.set(command, r);
    totalOps += r;
  }
  return {
    opsPerSecond,
    totalOpsPerSecond: totalOps,
    latency: before === undefined ? new Map<string, Percentiles>() : latencyBetween(before, now),
    latencyAll: before === undefined ? undefined : latencyBetween(before, now, true).get(''),
    connections: sumBy(now, METRICS.connections, 'transport'),
    subscriptions: total(now, METRICS.subscriptions),
    rssBytes: total(now, METRICS.rss),
    heapUsedBytes: total(now, METRICS.heapUsed),
    bytesReceivedPerSecond: rate(before && total(before, METRICS.bytesReceived), total(now, METRICS.bytesReceived)),
    bytesSentPerSecond: rate(before && total(before, METRICS.bytesSent), total(now, METRICS.bytesSent)),
  };
}

/** A counter's increase; a counter that went down was reset (server restart) and counts from zero. */
function increase(before: number, now: number): number {
  return now >= before ? now - before : now;
}

/** Per command (or all under `''` when `merged`): cumulative bucket counts by upper bound. */
function bucketsByCommand(scrape: Scrape, merged: boolean): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const s of samplesOf(scrape, METRICS.duration)) {
    const command = merged ? '' : (s.labels.command ?? '');
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (Number.isNaN(le)) continue;
    let buckets = out.get(command);
    if (buckets === undefined) out.set(command, (buckets = new Map<number, number>()));
    buckets.set(le, (buckets.get(le) ?? 0) + s.value);
  }
  return out;
}

function latencyBetween(before: Scrape, now: Scrape, merged = false): Map<string, Percentiles> {
  const then = bucketsByCommand(before, merged);
  const out = new Map<string, Percentiles>();
  for (const [command, buckets] of bucketsByCommand(now, merged)) {
    const previous = then.get(command);
    const bounds = [...buckets.keys()].sort((a, b) => a - b);
    const counts = bounds.map((le) => increase(previous?.get(le) ?? 0, buckets.get(le)!));
    const p50 = quantile(0.5, bounds, counts);
    const p99 = quantile(0.99, bounds, counts);
    if (p50 !== undefined && p99 !== undefined) out.set(command, { p50, p99 });
  }
  return out;
}

/**
 * The `q` quantile of a histogram given as cumulative `counts` per upper bound (ascending, the
 * last `Infinity`), interpolating linearly inside the bucket it falls in; `undefined` for an
 * empty histogram. A quantile in the `+Inf` bucket is the largest finite bound.
 */
export function quantile(q: number, bounds: readonly number[], counts: readonly number[]): number | undefined {
  const count = counts.at(-1) ?? 0;
  if (count <= 0) return undefined;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const upper = bounds[i];
    const cumulative = counts[i];
    if (cumulative >= rank) {
      if (upper === Infinity) return lower;
      const inBucket = cumulative - below;
      return inBucket <= 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
    }
    lower = upper;
    below = cumulative;
  }
  return lower;
}
