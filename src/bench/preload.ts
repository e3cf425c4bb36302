/**
 * Loading the keyspace before a read benchmark, so that every HGET finds its key. This part is
 * not timed, so it uses the ordinary client channel and HMSET batches.
 */
import type { Duplex } from 'node:stream';
import { Channel } from '../client/channel.js';
import type { CommandRequest } from '../protocol/generated/abi.js';
import { requests } from '../protocol/requests.js';
import { benchValue, hashCount, hashTable, keyName, type WorkloadSpec } from './workload.js';

/** Pairs per HMSET while loading. */
const BATCH = 1000;
/** HMSETs in flight while loading. */
const WINDOW = 32;
/** Give up when the server answers nothing for this long. */
const STALL_MS = 30_000;

/** Whether a workload reads keys that must exist first. */
export function needsPreload(command: WorkloadSpec['command']): boolean {
  return command === 'hget' || command === 'hmget' || command === 'hgetall' || command === 'mix';
}

/** Writes every key the workload may read; resolves with the number of fields written. */
export async function preload(stream: Duplex, spec: WorkloadSpec): Promise<number> {
  const channel = new Channel(stream);
  const value = benchValue(spec.valueSize);
  let written = 0;
  let answeredAt = Date.now();
  const watchdog = setInterval(() => {
    if (Date.now() - answeredAt > STALL_MS) channel.destroy(new Error(`no answer from the server for ${STALL_MS / 1000} s`));
  }, 1000);
  watchdog.unref();
  try {
    await runWindowed(batches(spec, value), (request, size) =>
      channel.request(request).then((response) => {
        answeredAt = Date.now();
        if (response.status !== 200) throw new Error(`status ${response.status}: ${response.message}`);
        written += size;
      }),
    );
  } finally {
    clearInterval(watchdog);
    channel.end();
    await Promise.race([channel.closed, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    channel.destroy();
  }
  return written;
}

/** The HMSET requests that load the keyspace, with their pair counts. */
function* batches(spec: WorkloadSpec, value: string): Generator<[CommandRequest, number]> {
  if (spec.command === 'hgetall') {
    // Each hash TABLE:N holds fields 0..fields-1; big hashes are split over several HMSETs.
    const hashes = hashCount(spec);
    for (let h = 0; h < hashes; h++) {
      const table = hashTable(spec.table, h);
      for (let start = 0; start < spec.fields; start += BATCH) {
        const end = Math.min(start + BATCH, spec.fields);
        yield [requests.hmset(table, pairs(start, end, value)), end - start];
      }
    }
    return;
  }
  for (let start = 0; start < spec.keyspace; start += BATCH) {
    const end = Math.min(start + BATCH, spec.keyspace);
    yield [requests.hmset(spec.table, pairs(start, end, value)), end - start];
  }
}

function pairs(start: number, end: number, value: string): [string, string][] {
  const out: [string, string][] = [];
  for (let i = start; i < end; i++) out.push([keyName(i), value]);
  return out;
}

/** Runs `send` over every item with at most {@link WINDOW} in flight. */
async function runWindowed(items: Iterator<[CommandRequest, number]>, send: (request: CommandRequest, size: number) => Promise<void>): Promise<void> {
  let failure: Error | undefined;
  const lane = async (): Promise<void> => {
    for (let next = items.next(); !next.done && failure === undefined; next = items.next()) {
      try {
        await send(...next.value);
      } catch (err) {
        failure ??= err instanceof Error ? err : new Error(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  if (failure !== undefined) throw failure;
}
