/**
 * The probe of the hostile-client run, forked by `Probe.start`: one `HGET` every 50 ms on its own
 * connection, each timed from send to answer. Requests still unanswered when the run stops count
 * with the time they have waited so far, so a server that never answers shows as a long stall.
 */
import { performance } from 'node:perf_hooks';
import { connect, type ConnectOptions, type KvClient } from '../../src/client/client.js';
import type { ProbeResult } from './kit.js';

const INTERVAL_MS = 50;

let latencies: number[] = [];
let failures = 0;
const inFlight = new Set<number>();
let kv: KvClient | undefined;
let timer: NodeJS.Timeout | undefined;

function tick(): void {
  if (kv === undefined) return;
  const sentAt = performance.now();
  inFlight.add(sentAt);
  kv.hget('probe', 'key').then(
    () => {
      if (inFlight.delete(sentAt)) latencies.push(performance.now() - sentAt);
    },
    () => {
      if (inFlight.delete(sentAt)) failures++;
    },
  );
}

function result(): ProbeResult {
  const now = performance.now();
  const all = [...latencies, ...Array.from(inFlight, (sentAt) => now - sentAt)].sort((a, b) => a - b);
  const p99 = all.length === 0 ? 0 : all[Math.min(all.length - 1, Math.floor(all.length * 0.99))];
  return { samples: all.length, maxMs: all.length === 0 ? 0 : all[all.length - 1], p99Ms: p99, failures };
}

process.on('message', (m: { type: string; options?: ConnectOptions }) => {
  switch (m.type) {
    case 'start':
      void (async () => {
        try {
          kv = await connect(m.options);
          await kv.hset('probe', 'key', 'probe-value');
          timer = setInterval(tick, INTERVAL_MS);
          process.send?.({ type: 'ready' });
        } catch (err) {
          process.send?.({ type: 'failed', error: (err as Error).message });
          process.exit(1);
        }
      })();
      return;
    case 'reset':
      latencies = [];
      failures = 0;
      inFlight.clear();
      return;
    case 'stop':
      clearInterval(timer);
      process.send?.({ type: 'result', result: result() }, undefined, {}, () => process.exit(0));
      return;
  }
});
process.on('disconnect', () => process.exit(0));
