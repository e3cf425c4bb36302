/**
 * In-process throughput of the command engine, without any network: `Service.execute` for
 * HSET and HGET on the memory store and on the persistent (LMDB) store, plus the server's whole
 * per-request CPU path apart from I/O (decode → execute → encode the response frame) on the
 * memory store.
 *
 * For LMDB writes two numbers matter: a client awaiting each write before the next pays one disk
 * sync per write, while many writes in flight share a transaction and a sync (group commit).
 *
 * `npm run bench:engine` (add `-- --quick` for a shorter run). Prints a markdown table.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { LmdbStore } from '../src/storage/lmdb.js';
import { isPromise } from '../src/storage/store.js';
import { requests } from '../src/protocol/requests.js';
import { decodeRequest, encodeRequest } from '../src/protocol/wire.js';
import { encodeResponseFrame } from '../src/protocol/response-encoder.js';
import type { CommandRequest, CommandResponse } from '../src/protocol/generated/abi.js';
import { benchValue, keyName } from '../src/bench/workload.js';

const quick = process.argv.includes('--quick');
/** How long each synchronous measurement runs. */
const TARGET_MS = quick ? 300 : 1500;
const KEYSPACE = 10_000;
const TABLE = 'bench';
const VALUE = benchValue(32);

interface Row {
  store: string;
  operation: string;
  mode: string;
  ops: number;
  seconds: number;
  /** CPU the rest of the machine used meanwhile, in percent of one core: high means disturbed. */
  otherCpu: number;
}

const rows: Row[] = [];
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** Busy CPU seconds of the whole machine, and of this process. */
function cpuSnapshot(): { machine: number; own: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const own = process.cpuUsage();
  return { machine: (f[0] + f[1] + f[2] + (f[7] ?? 0)) / CLOCK_TICKS, own: (own.user + own.system) / 1e6 };
}

let snapshot = cpuSnapshot();

/** Marks the start of a measurement (for the "other CPU" column). */
function begin(): void {
  snapshot = cpuSnapshot();
}

function record(store: string, operation: string, mode: string, ops: number, ms: number): void {
  const now = cpuSnapshot();
  const other = Math.max(0, Math.round(((now.machine - snapshot.machine - (now.own - snapshot.own)) * 100 * 1000) / ms));
  rows.push({ store, operation, mode, ops, seconds: ms / 1000, otherCpu: other });
  process.stderr.write(`${store} ${operation} ${mode}: ${Math.round((ops * 1000) / ms).toLocaleString('en-US')} ops/s (other CPU ${other}%)\n`);
}

const hsets = Array.from({ length: KEYSPACE }, (_, i) => requests.hset(TABLE, keyName(i), VALUE));
const hgets = Array.from({ length: KEYSPACE }, (_, i) => requests.hget(TABLE, keyName(i)));

/**
 * Runs `step(i)` in rounds until `TARGET_MS` has passed; the clock is read once per round so
 * that it does not weigh on cheap operations. Returns [ops, ms].
 */
function timeSync(step: (i: number) => unknown): [number, number] {
  const round = 10_000;
  // Warm-up, so the optimizing compiler has seen the path before we time it.
  for (let i = 0; i < round * 5; i++) step(i % KEYSPACE);
  begin();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < TARGET_MS) {
    for (let i = 0; i < round; i++) step((ops + i) % KEYSPACE);
    ops += round;
    now = performance.now();
  }
  return [ops, now - start];
}

function expectOk(r: CommandResponse | Promise<CommandResponse>): void {
  if (isPromise(r)) throw new Error('expected a synchronous response');
  if (r.status !== 200) throw new Error(`unexpected status ${r.status}: ${r.message}`);
}

async function memory(): Promise<void> {
  const service = new Service({ store: new MemoryStore() });
  let [ops, ms] = timeSync((i) => expectOk(service.execute(hsets[i])));
  record('memory', 'HSET', 'Service.execute', ops, ms);
  [ops, ms] = timeSync((i) => expectOk(service.execute(hgets[i])));
  record('memory', 'HGET', 'Service.execute', ops, ms);

  // What the server does per request besides I/O: decode the payload, execute, encode the frame.
  const hgetPayloads = hgets.map((r) => Buffer.from(encodeRequest(r)));
  const hsetPayloads = hsets.map((r) => Buffer.from(encodeRequest(r)));
  // The request decoder alone (it validates every string as UTF-8 while slicing it).
  [ops, ms] = timeSync((i) => decodeRequest(hgetPayloads[i]));
  record('-', 'HGET', 'decode request payload', ops, ms);
  [ops, ms] = timeSync((i) => decodeRequest(hsetPayloads[i]));
  record('-', 'HSET', 'decode request payload', ops, ms);
  [ops, ms] = timeSync((i) => {
    const response = service.execute(decodeRequest(hgetPayloads[i]));
    if (isPromise(response)) throw new Error('expected a synchronous response');
    return encodeResponseFrame(response);
  });
  record('memory', 'HGET', 'decode + execute + encode frame', ops, ms);
  [ops, ms] = timeSync((i) => {
    const response = service.execute(decodeRequest(hsetPayloads[i]));
    if (isPromise(response)) throw new Error('expected a synchronous response');
    return encodeResponseFrame(response);
  });
  record('memory', 'HSET', 'decode + execute + encode frame', ops, ms);
  await service.close();
}

async function lmdb(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'protokv-engine-'));
  const service = new Service({ store: LmdbStore.open(dir) });
  try {
    // Load the keyspace with group-committed writes (untimed), then read it.
    await Promise.all(hsets.map((r) => Promise.resolve(service.execute(r))));
    const [ops, ms] = timeSync((i) => expectOk(service.execute(hgets[i])));
    record('lmdb', 'HGET', 'Service.execute', ops, ms);

    await timeAsync('lmdb', 'HSET', 'durable, awaited one by one', 1, quick ? 300 : 2000, service);
    await timeAsync('lmdb', 'HSET', 'durable, 50 in flight', 50, quick ? 500 : 3000, service);
    await timeAsync('lmdb', 'HSET', 'durable, 1000 in flight', 1000, quick ? 500 : 3000, service);
  } finally {
    await service.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Keeps `inFlight` writes outstanding (each new one issued as one completes) for `ms`
 * milliseconds; every write is acknowledged only once it is committed to disk.
 */
async function timeAsync(store: string, operation: string, mode: string, inFlight: number, ms: number, service: Service): Promise<void> {
  let issued = 0;
  let done = 0;
  begin();
  const start = performance.now();
  const deadline = start + ms;
  const lane = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const request: CommandRequest = hsets[issued++ % KEYSPACE];
      const response = await service.execute(request);
      if (response.status !== 200) throw new Error(`unexpected status ${response.status}: ${response.message}`);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  record(store, operation, mode, done, performance.now() - start);
}

function table(): string {
  const out = ['| store | operation | mode | ops | seconds | ops/s | other CPU |', '|---|---|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    const rate = Math.round(r.ops / r.seconds).toLocaleString('en-US');
    out.push(`| ${r.store} | ${r.operation} | ${r.mode} | ${r.ops.toLocaleString('en-US')} | ${r.seconds.toFixed(2)} | ${rate} | ${r.otherCpu}% |`);
  }
  return out.join('\n');
}

await memory();
await lmdb();
process.stdout.write(
  `\nprotokv engine, Node ${process.version}, ${KEYSPACE} keys, 32-byte string values. "Other CPU" is what the rest of the ` +
    `machine used during the measurement (percent of one core); a high value means the row was disturbed.\n\n${table()}\n`,
);
