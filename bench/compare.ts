/**
 * protokv next to Redis on this machine: the same workloads, interleaved in one run, against
 * - protokv with the memory store and Redis without persistence, and
 * - protokv with the persistent store and Redis with `appendfsync always` (every acknowledged
 *   write is on disk in both);
 * then memory per stored field after loading 1,000,000 fields into each, and the ceiling of the
 * load generator itself (against a server that answers without doing anything).
 *
 * Everything listens on 127.0.0.1, on ports the OS picks. protokv is measured with
 * `protokv bench --json`, Redis with `redis-benchmark` running the equivalent HSET/HGET commands
 * (same key format, keyspace, value size, connections and pipeline depth). A second set of rows
 * drives both with the same load generator, `redis-benchmark`: protokv through its RESP listener
 * (`--resp`), so that the comparison does not depend on protokv's own load generator.
 *
 * Then the cost of observability: protokv's throughput with metrics on, and with tracing at sample
 * ratios 0.01 and 1.0 (spans exported to a sink in this process), next to both off.
 *
 * `node dist/bench/compare.js [--quick] [--repeat N] [--no-pin] [--skip-memory] [--skip-durable] [--resp-only]
 * [--skip-observability | --observability] [--everysec]`; prints markdown on stdout and progress on stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { connect } from '../src/client/client.js';
import { requests } from '../src/protocol/requests.js';
import type { BenchReport } from '../src/bench/report.js';
import { benchValue, keyName } from '../src/bench/workload.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HELP = `usage: node dist/bench/compare.js [--quick] [--repeat N] [--no-pin] [--skip-memory] [--skip-durable] [--resp-only]
                                   [--skip-observability | --observability]

Runs protokv and Redis side by side on loopback and prints markdown tables.
  --quick          fewer requests per cell and 200,000 fields for the memory test
  --repeat N       run every cell N times (interleaved) and report the median run (default 1)
  --no-pin         do not pin servers to CPU 0 and load generators to CPU 1 (pinning needs taskset
                   and 2+ cores)
  --skip-memory    skip the memory-per-field measurement
  --skip-durable   skip the persistent-store / appendfsync-always comparison
  --resp-only      only the redis-benchmark rows (protokv's RESP listener next to redis-server)
  --skip-observability  skip the cost of metrics and tracing
  --observability  measure only the cost of metrics and tracing (protokv alone, no Redis)
  --everysec       also protokv's periodic durability next to Redis with appendfsync everysec
`;

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    'skip-memory': { type: 'boolean' },
    'skip-durable': { type: 'boolean' },
    'resp-only': { type: 'boolean' },
    'skip-observability': { type: 'boolean' },
    observability: { type: 'boolean' },
    everysec: { type: 'boolean' },
    repeat: { type: 'string' },
    'no-pin': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (flags.help === true) {
  process.stdout.write(HELP);
  process.exit(0);
}
const quick = flags.quick === true;
const respOnly = flags['resp-only'] === true;
const REPEAT = Number(flags.repeat ?? '1');
if (!Number.isInteger(REPEAT) || REPEAT < 1 || REPEAT > 9) {
  process.stderr.write(`invalid --repeat "${flags.repeat}": expected 1 to 9\n`);
  process.exit(2);
}

/**
 * Servers run on CPU 0 and load generators on CPU 1: each side gets a core of its own, for Redis
 * and protokv alike, and runs stop depending on where the scheduler happens to place them.
 */
const PIN = flags['no-pin'] !== true && os.cpus().length >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
const SERVER_CPU = 0;
const CLIENT_CPU = 1;

/** Starts `command` pinned to `cpu` when pinning is on (taskset execs it, so the pid is the command's). */
function spawnOn(cpu: number, command: string, args: string[], options: Parameters<typeof spawn>[2]): ChildProcess {
  return PIN ? spawn('taskset', ['-c', String(cpu), command, ...args], options) : spawn(command, args, options);
}

const KEYSPACE = 10_000;
const VALUE_SIZE = 32;
const TABLE = 'bench';
const MEMORY_FIELDS = quick ? 200_000 : 1_000_000;

interface Cell {
  command: 'hset' | 'hget';
  connections: number;
  pipeline: number;
  requests: number;
}

const CELLS: Cell[] = [
  { command: 'hset', connections: 50, pipeline: 1, requests: quick ? 40_000 : 200_000 },
  { command: 'hset', connections: 50, pipeline: 16, requests: quick ? 100_000 : 500_000 },
  { command: 'hget', connections: 50, pipeline: 1, requests: quick ? 40_000 : 200_000 },
  { command: 'hget', connections: 50, pipeline: 16, requests: quick ? 100_000 : 500_000 },
  { command: 'hget', connections: 1, pipeline: 1, requests: quick ? 10_000 : 50_000 },
];

/** The redis-benchmark rows: the same generator against protokv's RESP listener and redis-server. */
const RESP_CELLS: Cell[] = [
  { command: 'hset', connections: 50, pipeline: 1, requests: quick ? 40_000 : 200_000 },
  { command: 'hset', connections: 50, pipeline: 16, requests: quick ? 100_000 : 500_000 },
  { command: 'hget', connections: 50, pipeline: 1, requests: quick ? 40_000 : 200_000 },
  { command: 'hget', connections: 50, pipeline: 16, requests: quick ? 100_000 : 500_000 },
];

const log = (text: string): void => void process.stderr.write(`${text}\n`);

// ---------------------------------------------------------------------------------------------
// Processes

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

function cleanup(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(code);
  });
}

/** A server process we started. */
interface Server {
  name: string;
  pid: number;
  host: string;
  port: number;
  stop(): Promise<void>;
  /** Throws if the server has died. */
  check?(): void;
}

/** Children we are stopping on purpose; any other exit of a tracked server is reported. */
const stopping = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Makes the unexpected death of a server loud, and the next measurement on it fail clearly. */
function watchServer(child: ChildProcess, name: string): () => void {
  let failure: string | undefined;
  child.once('exit', (code, signal) => {
    if (stopping.has(child)) return;
    failure = `${name} (pid ${child.pid}) exited unexpectedly (${signal === null ? `code ${code}` : `signal ${signal}`})`;
    log(failure);
  });
  return () => {
    if (failure !== undefined) throw new Error(failure);
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  stopping.add(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A `"msg":"listening"` log line: the listener's address, and (on the first) the HTTP listener's URL or `off`. */
interface ListeningLine {
  address: string;
  http?: string;
}

/**
 * Waits for `count` JSON log lines with `"msg":"listening"` and returns them in order (protokv
 * logs the protobuf listener first, then the RESP listener).
 */
function waitForListening(child: ChildProcess, timeoutMs: number, count = 1): Promise<ListeningLine[]> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    const addresses: ListeningLine[] = [];
    const timer = setTimeout(() => done(new Error(`no "listening" line within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as { msg?: unknown; address?: unknown; http?: unknown };
          if (entry.msg === 'listening' && typeof entry.address === 'string') {
            addresses.push({ address: entry.address, http: typeof entry.http === 'string' ? entry.http : undefined });
          }
          if (addresses.length === count) return done(undefined);
        } catch {
          // not a JSON log line
        }
      }
    };
    const onExit = (code: number | null): void => done(new Error(`exited with code ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', onExit);
    function done(err: Error | undefined): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      // Keep draining the pipes so a chatty server never blocks on a full pipe.
      child.stdout!.resume();
      child.stderr!.resume();
      if (err) reject(err);
      else resolve(addresses);
    }
  });
}

function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) };
}

/**
 * Starts `protokv serve` on a free loopback port, with its RESP listener on another, in its
 * default configuration (metrics on, served by an HTTP listener on a free port; tracing off)
 * unless `extra` settings say otherwise.
 */
async function startProtokv(
  store: 'memory' | 'persistent',
  extra: string[] = [],
  label: string = store,
): Promise<Server & { dataDir?: string; respPort: number; http?: string }> {
  const dataDir = store === 'persistent' ? tempDir('protokv-compare-') : undefined;
  const storeArgs = dataDir === undefined ? ['--memory'] : ['--data-dir', dataDir];
  const args = [
    join(ROOT, 'bin/protokv.js'), 'serve', ...storeArgs, '--listen', '127.0.0.1:0', '--resp', '127.0.0.1:0', '--http', '127.0.0.1:0', '--log-level', 'info',
    ...extra,
  ];
  // The standard OpenTelemetry variables of the caller's environment must not turn tracing on behind our back.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const child = track(spawnOn(SERVER_CPU, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...env, NO_COLOR: '1' } }));
  try {
    const [main, resp] = await waitForListening(child, 15_000, 2);
    const { host, port } = splitAddress(main.address);
    const name = `protokv (${label})`;
    const http = main.http === 'off' ? undefined : main.http;
    return {
      name, pid: child.pid!, host, port, respPort: splitAddress(resp.address).port, dataDir, http, stop: () => stopChild(child), check: watchServer(child, name),
    };
  } catch (err) {
    await stopChild(child);
    throw new Error(`cannot start protokv: ${(err as Error).message}`, { cause: err });
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function haveRedis(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-benchmark', ['--version']).status === 0;
}

/** Starts redis-server without persistence, or with every write fsynced before it is acknowledged. */
async function startRedis(durable: boolean): Promise<Server> {
  const dir = tempDir('protokv-compare-redis-');
  // The port is free a moment ago; should another process take it meanwhile, retry with another.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const persistence = durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
    const child = track(
      spawnOn(SERVER_CPU, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir, '--daemonize', 'no'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );
    child.stderr!.resume();
    try {
      for (let i = 0; ; i++) {
        if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
        try {
          const [pong] = await redisCall(port, [['PING']]);
          if (pong === 'PONG') break;
        } catch (err) {
          if (i > 100) throw err;
          await sleep(50);
        }
      }
      const name = durable ? 'redis (appendfsync always)' : 'redis (no persistence)';
      return { name, pid: child.pid!, host: '127.0.0.1', port, stop: () => stopChild(child), check: watchServer(child, name) };
    } catch (err) {
      await stopChild(child);
      if (attempt >= 2) throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A minimal RESP client, enough to load data and read INFO

type Reply = string | number | null | Error;

function parseReply(buf: Buffer, pos: number): [Reply, number] | undefined {
  const nl = buf.indexOf('\r\n', pos);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, nl);
  switch (type) {
    case '+':
      return [line, nl + 2];
    case '-':
      return [new Error(line), nl + 2];
    case ':':
      return [Number(line), nl + 2];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, nl + 2];
      if (buf.length < nl + 2 + len + 2) return undefined;
      return [buf.toString('utf8', nl + 2, nl + 2 + len), nl + 2 + len + 2];
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

function encodeCommand(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** Sends `commands` pipelined on a new connection and returns their replies. */
async function redisCall(port: number, commands: string[][]): Promise<Reply[]> {
  const socket = net.connect({ host: '127.0.0.1', port });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return await redisPipeline(socket, commands);
  } finally {
    socket.destroy();
  }
}

function redisPipeline(socket: net.Socket, commands: string[][]): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const replies: Reply[] = [];
    let buf: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let pos = 0;
      for (;;) {
        const r = parseReply(buf, pos);
        if (r === undefined) break;
        replies.push(r[0]);
        pos = r[1];
      }
      buf = buf.subarray(pos);
      if (replies.length === commands.length) finish(undefined);
    };
    const onError = (err: Error): void => finish(err);
    socket.on('data', onData);
    socket.once('error', onError);
    socket.write(commands.map(encodeCommand).join(''));
    function finish(err: Error | undefined): void {
      socket.off('data', onData);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve(replies);
    }
  });
}

/** Loads `count` fields into hash `table`, 1000 per HSET, 50 HSETs per round trip. */
async function redisLoad(port: number, table: string, count: number, key: (i: number) => string, value: string): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  try {
    const perCommand = 1000;
    const perTrip = 50;
    for (let start = 0; start < count; start += perCommand * perTrip) {
      const commands: string[][] = [];
      for (let c = start; c < Math.min(count, start + perCommand * perTrip); c += perCommand) {
        const args = ['HSET', table];
        for (let i = c; i < Math.min(count, c + perCommand); i++) args.push(key(i), value);
        commands.push(args);
      }
      for (const r of await redisPipeline(socket, commands)) if (r instanceof Error) throw r;
    }
  } finally {
    socket.destroy();
  }
}

async function redisInfo(port: number, section: string): Promise<Map<string, string>> {
  const [reply] = await redisCall(port, [['INFO', section]]);
  if (typeof reply !== 'string') throw new Error('INFO did not answer with text');
  return new Map(
    reply
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

// ---------------------------------------------------------------------------------------------
// Running the load generators

interface Measurement {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  errors: number;
  /** Server CPU over the load generator's run, in percent of one core (approximate: setup included). */
  serverCpuPercent?: number;
  /** The load generator's own CPU, in percent of one core (protokv bench only). */
  generatorCpuPercent?: number;
  /** CPU used by everything else on the machine during the run, in percent of one core. */
  foreignCpuPercent?: number;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** CPU seconds (user + system) process `pid` has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Runs `measure` and adds the server's CPU use over it. */
/** CPU seconds every CPU of the machine has spent busy (user, nice, system, and stolen by the hypervisor). */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + (f[7] ?? 0)) / CLOCK_TICKS;
}

/** CPU seconds of this process and of its children that have exited (the load generators). */
function ownSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS;
}

/**
 * Runs `measure` and adds the server's CPU use over it, and how much CPU the rest of the machine
 * used meanwhile (other programs, or the hypervisor): runs with much of it were disturbed.
 */
async function withServerCpu<M extends Measurement>(server: Server, seconds: (m: M) => number, measure: () => Promise<M>): Promise<M> {
  server.check?.();
  const before = cpuSeconds(server.pid);
  const busyBefore = machineBusySeconds();
  const ownBefore = ownSeconds();
  const started = performance.now();
  const m = await measure();
  server.check?.();
  const wall = (performance.now() - started) / 1000;
  const used = cpuSeconds(server.pid) - before;
  const foreign = machineBusySeconds() - busyBefore - used - (ownSeconds() - ownBefore);
  const duration = seconds(m);
  return {
    ...m,
    serverCpuPercent: duration > 0 ? Math.round((used * 100) / duration) : 0,
    foreignCpuPercent: Math.max(0, Math.round((foreign * 100) / wall)),
  };
}

const BENCH_COMMAND = [join(ROOT, 'bin/protokv.js'), 'bench'];

function runChild(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = track(spawnOn(CLIENT_CPU, command, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function protokvBench(server: { host: string; port: number }, cell: Cell, extra: string[] = []): Promise<Measurement & { report: BenchReport }> {
  const args = [
    ...BENCH_COMMAND,
    '--server', `${server.host}:${server.port}`,
    '--command', cell.command,
    '--connections', String(cell.connections),
    '--pipeline', String(cell.pipeline),
    '--requests', String(cell.requests),
    '--keyspace', String(KEYSPACE),
    '--value-size', String(VALUE_SIZE),
    '--table', TABLE,
    '--json',
    ...extra,
  ];
  const { code, stdout, stderr } = await runChild(process.execPath, args);
  const last = stdout.trim().split('\n').pop() ?? '';
  let report: BenchReport;
  try {
    report = JSON.parse(last) as BenchReport;
  } catch {
    throw new Error(`protokv bench exited with ${code} without a report: ${stderr.trim()}`);
  }
  return {
    opsPerSec: report.opsPerSec,
    p50Ms: report.p50Ms,
    p99Ms: report.p99Ms,
    p999Ms: report.p999Ms,
    errors: report.errors,
    generatorCpuPercent: report.generatorCpuPercent,
    report,
  };
}

async function redisBench(server: Server, cell: Cell): Promise<Measurement> {
  const value = benchValue(VALUE_SIZE);
  const words = cell.command === 'hset' ? ['HSET', TABLE, '__rand_int__', value] : ['HGET', TABLE, '__rand_int__'];
  const args = [
    '-h', server.host,
    '-p', String(server.port),
    '-c', String(cell.connections),
    '-P', String(cell.pipeline),
    '-n', String(cell.requests),
    '-r', String(KEYSPACE),
    '-d', String(VALUE_SIZE),
    ...words,
  ];
  const { code, stdout, stderr } = await runChild('redis-benchmark', args);
  // The full report (not --csv, which stops at p99): its percentile table gives p99.9 too.
  const text = stdout.replace(/\r/g, '\n');
  const rps = /throughput summary: ([\d.]+) requests per second/.exec(text);
  const percentiles = [...text.matchAll(/^([\d.]+)% <= ([\d.]+) milliseconds/gm)].map((m) => [Number(m[1]), Number(m[2])] as const);
  if (code !== 0 || rps === null || percentiles.length === 0) {
    throw new Error(`redis-benchmark exited with ${code}: ${(stderr || stdout).trim().slice(-300)}`);
  }
  // "X% <= Y milliseconds": the first line reaching the percentile bounds it from above.
  const at = (q: number): number => (percentiles.find(([p]) => p >= q) ?? percentiles[percentiles.length - 1])[1];
  // redis-benchmark counts error replies in its output text only; a clean run has none.
  const errors = /error/i.test(stderr) ? 1 : 0;
  return { opsPerSec: Math.round(Number(rps[1])), p50Ms: at(50), p99Ms: at(99), p999Ms: at(99.9), errors };
}

// ---------------------------------------------------------------------------------------------
// Measurements

interface MatrixRow extends Pair {
  group: string;
  cell: Cell;
}

interface Pair {
  protokv: Measurement;
  redis: Measurement | undefined;
  /** Kept although other load on the machine disturbed it. */
  disturbed?: boolean;
}

/** A run is disturbed when the rest of the machine used more than this much CPU (% of one core). */
const DISTURBED_PERCENT = 25;
/** Attempts at an undisturbed run before keeping a disturbed one. */
const ATTEMPTS = 3;
/** Longest total time spent waiting for the machine to calm down. */
let quietBudgetMs = quick ? 30_000 : 180_000;
/** Runs kept although disturbed; marked in the tables. */
let disturbedKept = 0;

function isDisturbed(...runs: (Measurement | undefined)[]): boolean {
  return runs.some((m) => (m?.foreignCpuPercent ?? 0) > DISTURBED_PERCENT);
}

/** Waits (within the budget) until the machine's other CPU use over one second is low. */
async function waitForQuiet(): Promise<void> {
  while (quietBudgetMs > 0) {
    const busy = machineBusySeconds();
    const own = ownSeconds();
    await sleep(1000);
    quietBudgetMs -= 1000;
    // Idle servers use next to nothing, so what is busy now is someone else.
    const other = (machineBusySeconds() - busy - (ownSeconds() - own)) * 100;
    if (other <= DISTURBED_PERCENT) return;
    log(`the machine is busy (other CPU ${Math.round(other)}%); waiting`);
  }
}

/** Runs `measure` until a run is not disturbed by other load (at most {@link ATTEMPTS} times). */
async function undisturbed<T extends object>(
  label: string,
  measure: () => Promise<T>,
  runsOf: (t: T) => (Measurement | undefined)[],
): Promise<T & { disturbed?: boolean }> {
  for (let attempt = 1; ; attempt++) {
    await waitForQuiet();
    const result = await measure();
    if (!isDisturbed(...runsOf(result))) return result;
    // Once the waiting budget is spent the machine is evidently busy for good: stop retrying.
    if (attempt >= ATTEMPTS || quietBudgetMs <= 0) {
      disturbedKept++;
      log(`${label}: still disturbed by other load after ${attempt} attempt(s); keeping the last one (marked †)`);
      return { ...result, disturbed: true };
    }
    log(`${label}: disturbed by other load; measuring again`);
  }
}

async function matrix(group: string, protokv: Server, redis: Server | undefined): Promise<MatrixRow[]> {
  const rows: MatrixRow[] = [];
  // Untimed warm-up: protokv runs on a JIT compiler that needs a moment to optimize its hot paths.
  for (const command of ['hset', 'hget'] as const) {
    await protokvBench(protokv, { command, connections: 50, pipeline: 16, requests: quick ? 50_000 : 200_000 });
  }
  if (redis !== undefined) {
    // HGET must find every key; redis-benchmark's random keys have protokv bench's format.
    await redisLoad(redis.port, TABLE, KEYSPACE, keyName, benchValue(VALUE_SIZE));
  }
  for (const [i, cell] of CELLS.entries()) {
    const label = `${group}: ${cell.command.toUpperCase()} c${cell.connections} P${cell.pipeline} n${cell.requests}`;
    const pairs: Pair[] = [];
    for (let rep = 0; rep < REPEAT; rep++) {
      // Alternate which goes first, so neither always runs on a warmer (or hotter) machine.
      const order = (i + rep) % 2 === 0 ? ['protokv', 'redis'] : ['redis', 'protokv'];
      pairs.push(
        await undisturbed(label, async () => {
          let p: Measurement | undefined;
          let r: Measurement | undefined;
          for (const who of order) {
            if (who === 'protokv') {
              p = await withServerCpu(protokv, (m) => m.report.durationSec, () => protokvBench(protokv, cell));
              log(
                `${label}: protokv ${p.opsPerSec.toLocaleString('en-US')} ops/s, p99 ${p.p99Ms} ms, ${p.errors} errors, ` +
                  `server CPU ${p.serverCpuPercent}%, generator CPU ${p.generatorCpuPercent}%, other CPU ${p.foreignCpuPercent}%`,
              );
            } else if (redis !== undefined) {
              r = await withServerCpu(redis, (m) => (m.opsPerSec > 0 ? cell.requests / m.opsPerSec : 0), () => redisBench(redis, cell));
              log(
                `${label}: redis ${r.opsPerSec.toLocaleString('en-US')} ops/s, p99 ${r.p99Ms} ms, server CPU ${r.serverCpuPercent}%, ` +
                  `other CPU ${r.foreignCpuPercent}%`,
              );
            }
          }
          return { protokv: p!, redis: r };
        }, (pair) => [pair.protokv, pair.redis]),
      );
    }
    // Runs of one repetition ran back to back, under the same machine conditions: keep pairs
    // together and report the pair with the median ratio.
    const key = (x: Pair): number => (x.redis === undefined ? x.protokv.opsPerSec : x.protokv.opsPerSec / Math.max(1, x.redis.opsPerSec));
    const chosen = [...pairs].sort((a, b) => key(a) - key(b))[Math.floor((pairs.length - 1) / 2)];
    rows.push({ group, cell, ...chosen });
  }
  return rows;
}

/**
 * The same redis-benchmark runs against protokv's RESP listener and redis-server, interleaved,
 * after loading the same keyspace into both (so every HGET finds its key).
 */
async function respMatrix(group: string, protokv: Server & { respPort: number }, redis: Server): Promise<MatrixRow[]> {
  const viaResp: Server = { ...protokv, port: protokv.respPort };
  await redisLoad(viaResp.port, TABLE, KEYSPACE, keyName, benchValue(VALUE_SIZE));
  await redisLoad(redis.port, TABLE, KEYSPACE, keyName, benchValue(VALUE_SIZE));
  // Untimed warm-up, as for protokv bench.
  await redisBench(viaResp, { command: 'hset', connections: 50, pipeline: 16, requests: quick ? 50_000 : 200_000 });
  await redisBench(viaResp, { command: 'hget', connections: 50, pipeline: 16, requests: quick ? 50_000 : 200_000 });
  const rows: MatrixRow[] = [];
  for (const [i, cell] of RESP_CELLS.entries()) {
    const label = `${group} (redis-benchmark on both): ${cell.command.toUpperCase()} c${cell.connections} P${cell.pipeline} n${cell.requests}`;
    const pairs: Pair[] = [];
    for (let rep = 0; rep < REPEAT; rep++) {
      const order = (i + rep) % 2 === 0 ? ['protokv', 'redis'] : ['redis', 'protokv'];
      pairs.push(
        await undisturbed(label, async () => {
          const runs: Record<string, Measurement> = {};
          for (const who of order) {
            const server = who === 'protokv' ? viaResp : redis;
            const m = await withServerCpu(server, (r) => (r.opsPerSec > 0 ? cell.requests / r.opsPerSec : 0), () => redisBench(server, cell));
            runs[who] = m;
            log(`${label}: ${who} ${m.opsPerSec.toLocaleString('en-US')} ops/s, p99 ${m.p99Ms} ms, server CPU ${m.serverCpuPercent}%, other CPU ${m.foreignCpuPercent}%`);
          }
          return { protokv: runs.protokv, redis: runs.redis };
        }, (pair) => [pair.protokv, pair.redis]),
      );
    }
    const key = (x: Pair): number => x.protokv.opsPerSec / Math.max(1, x.redis?.opsPerSec ?? 1);
    rows.push({ group, cell, ...[...pairs].sort((a, b) => key(a) - key(b))[Math.floor((pairs.length - 1) / 2)] });
  }
  return rows;
}

/** The run with the median throughput (the lower middle one for an even count). */
function median<M extends Measurement>(runs: M[]): M | undefined {
  const sorted = [...runs].sort((a, b) => a.opsPerSec - b.opsPerSec);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function readRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** 16-byte keys for the memory test. */
const memKey = (i: number): string => `key:${keyName(i)}`;

async function protokvLoad(server: Server, fields: number): Promise<void> {
  const kv = await connect({ host: server.host, port: server.port });
  try {
    const value = benchValue(VALUE_SIZE);
    const batch = 1000;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < fields) {
        const start = next;
        next = Math.min(fields, next + batch);
        const pairs: [string, string][] = [];
        for (let i = start; i < next; i++) pairs.push([memKey(i), value]);
        const r = await kv.send(requests.hmset('mem', pairs));
        if (r.status !== 200) throw new Error(`HMSET failed: ${r.status} ${r.message}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
  } finally {
    await kv.close();
  }
}

interface MemoryRow {
  system: string;
  measure: string;
  bytes: number;
}

async function memoryPerField(redisAvailable: boolean): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  const settle = async (): Promise<void> => sleep(1500);

  const memory = await startProtokv('memory');
  try {
    await settle();
    const before = readRssBytes(memory.pid);
    await protokvLoad(memory, MEMORY_FIELDS);
    await settle();
    const after = readRssBytes(memory.pid);
    rows.push({ system: 'protokv, memory store', measure: 'process RSS growth', bytes: (after - before) / MEMORY_FIELDS });
    log(`memory: protokv memory store RSS ${mib(before)} → ${mib(after)}`);
  } finally {
    await memory.stop();
  }

  if (flags['skip-durable'] !== true) {
    const persistent = await startProtokv('persistent');
    try {
      await protokvLoad(persistent, MEMORY_FIELDS);
      const file = statSync(join(persistent.dataDir!, 'data.mdb'));
      rows.push({ system: 'protokv, persistent store', measure: 'data.mdb on disk (allocated blocks)', bytes: (file.blocks * 512) / MEMORY_FIELDS });
      log(`memory: protokv persistent store data.mdb ${mib(file.blocks * 512)}`);
    } finally {
      await persistent.stop();
    }
  }

  if (redisAvailable) {
    const redis = await startRedis(false);
    try {
      const before = await redisInfo(redis.port, 'memory');
      const rssBefore = readRssBytes(redis.pid);
      await redisLoad(redis.port, 'mem', MEMORY_FIELDS, memKey, benchValue(VALUE_SIZE));
      await settle();
      const after = await redisInfo(redis.port, 'memory');
      const rssAfter = readRssBytes(redis.pid);
      const delta = (name: string): number => (Number(after.get(name)) - Number(before.get(name))) / MEMORY_FIELDS;
      rows.push({ system: 'redis', measure: 'process RSS growth (/proc)', bytes: (rssAfter - rssBefore) / MEMORY_FIELDS });
      rows.push({ system: 'redis', measure: 'INFO used_memory_rss growth', bytes: delta('used_memory_rss') });
      rows.push({ system: 'redis', measure: 'INFO used_memory growth (allocator)', bytes: delta('used_memory') });
      log(`memory: redis RSS ${mib(rssBefore)} → ${mib(rssAfter)}`);
    } finally {
      await redis.stop();
    }
  }
  return rows;
}

async function generatorCeiling(): Promise<{ cell: Cell; run: Measurement & { report: BenchReport; disturbed?: boolean } }[]> {
  const child = track(spawnOn(SERVER_CPU, process.execPath, [join(ROOT, 'dist/bench/null-server.js')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const [{ address }] = await waitForListening(child, 10_000);
  const { host, port } = splitAddress(address);
  const server: Server = { name: 'null server', pid: child.pid!, host, port, stop: () => stopChild(child), check: watchServer(child, 'null server') };
  const out: { cell: Cell; run: Measurement & { report: BenchReport; disturbed?: boolean } }[] = [];
  try {
    for (const cell of CELLS) {
      const runs: (Measurement & { report: BenchReport; disturbed?: boolean })[] = [];
      for (let rep = 0; rep < REPEAT; rep++) {
        const label = `null server: ${cell.command.toUpperCase()} c${cell.connections} P${cell.pipeline}`;
        const run = await undisturbed(
          label,
          () => withServerCpu(server, (m) => m.report.durationSec, () => protokvBench(server, cell, ['--no-preload'])),
          (m) => [m],
        );
        log(
          `${label}: ${run.opsPerSec.toLocaleString('en-US')} ops/s, ` +
            `server CPU ${run.serverCpuPercent}%, generator CPU ${run.generatorCpuPercent}%, other CPU ${run.foreignCpuPercent}%`,
        );
        runs.push(run);
      }
      out.push({ cell, run: median(runs)! });
    }
  } finally {
    await server.stop();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The cost of metrics and tracing

const OBSERVABILITY_CELLS: Cell[] = [
  { command: 'hget', connections: 50, pipeline: 16, requests: quick ? 100_000 : 500_000 },
  { command: 'hset', connections: 50, pipeline: 16, requests: quick ? 100_000 : 500_000 },
  { command: 'hget', connections: 50, pipeline: 1, requests: quick ? 40_000 : 200_000 },
];

/** One configuration of a memory-store server; `sink` is the OTLP endpoint for tracing. */
interface ObservabilityConfig {
  name: string;
  args(sink: string): string[];
}

const OBSERVABILITY_CONFIGS: ObservabilityConfig[] = [
  { name: 'off', args: () => ['--http', 'off'] },
  { name: 'metrics', args: () => [] },
  { name: 'tracing 0.01', args: (sink) => ['--http', 'off', '--otlp-endpoint', sink, '--trace-sample', '0.01'] },
  { name: 'tracing 1.0', args: (sink) => ['--http', 'off', '--otlp-endpoint', sink, '--trace-sample', '1'] },
];

interface ObservabilityRow {
  cell: Cell;
  /** Per repetition, one run per configuration (in OBSERVABILITY_CONFIGS order). */
  repetitions: (Measurement[] & { disturbed?: boolean })[];
}

/** An OTLP/HTTP endpoint that accepts everything it is sent, counts it and keeps nothing. */
async function startSpanSink(): Promise<{ url: string; exports: number; bytes: number; close(): Promise<void> }> {
  const sink = { url: '', exports: 0, bytes: 0, close: () => Promise.resolve() };
  const server = http.createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (sink.bytes += chunk.length));
    req.on('end', () => {
      sink.exports++;
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  sink.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}

/** Sum of a counter's samples in a Prometheus text exposition. */
function counterTotal(exposition: string, name: string): number {
  let total = 0;
  for (const line of exposition.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

/**
 * Throughput of one memory-store server per configuration, measured back to back for every cell
 * and repetition (the order rotating), so that each comparison with "off" is between runs made
 * under the same machine conditions.
 */
async function observabilityCost(): Promise<{ rows: ObservabilityRow[]; counted: number; sent: number; exports: string }> {
  const sink = await startSpanSink();
  const servers: (Server & { http?: string })[] = [];
  const rows: ObservabilityRow[] = [];
  let sent = 0;
  let counted = 0;
  try {
    for (const config of OBSERVABILITY_CONFIGS) servers.push(await startProtokv('memory', config.args(sink.url), config.name));
    for (const server of servers) {
      for (const command of ['hset', 'hget'] as const) await protokvBench(server, { command, connections: 50, pipeline: 16, requests: quick ? 50_000 : 200_000 });
    }
    for (const [i, cell] of OBSERVABILITY_CELLS.entries()) {
      const row: ObservabilityRow = { cell, repetitions: [] };
      for (let rep = 0; rep < REPEAT; rep++) {
        const label = `observability: ${cell.command.toUpperCase()} c${cell.connections} P${cell.pipeline} n${cell.requests}`;
        const runs = await undisturbed(
          label,
          async () => {
            const out: Measurement[] = [];
            for (let k = 0; k < servers.length; k++) {
              const c = (i + rep + k) % servers.length;
              const m = await withServerCpu(servers[c], (r) => r.report.durationSec, () => protokvBench(servers[c], cell));
              if (c === 1) sent += cell.requests;
              log(`${label}: ${OBSERVABILITY_CONFIGS[c].name} ${num(m.opsPerSec)} ops/s, p99 ${m.p99Ms} ms, server CPU ${m.serverCpuPercent}%, other CPU ${m.foreignCpuPercent}%`);
              out[c] = m;
            }
            return out;
          },
          (out) => out,
        );
        row.repetitions.push(runs);
      }
      rows.push(row);
    }
    const metricsServer = servers[1];
    if (metricsServer.http !== undefined) {
      const response = await fetch(`${metricsServer.http}/metrics`);
      counted = counterTotal(await response.text(), 'protokv_command_duration_seconds_count');
    }
  } finally {
    for (const server of servers) await server.stop();
    await sink.close();
  }
  return { rows, counted, sent, exports: `${sink.exports} export requests, ${mib(sink.bytes)}` };
}

function observabilityTable(rows: ObservabilityRow[]): string {
  const names = OBSERVABILITY_CONFIGS.map((c) => c.name);
  const out = [
    `| command | connections | pipeline | ${names.map((n) => `${n} ops/s`).join(' | ')} | ${names.slice(1).map((n) => `${n} vs off`).join(' | ')} |`,
    `|---|---:|---:|${names.map(() => '---:').join('|')}|${names.slice(1).map(() => '---:').join('|')}|`,
  ];
  const middle = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
  for (const { cell, repetitions } of rows) {
    const ops = names.map((_, c) => middle(repetitions.map((r) => r[c].opsPerSec)));
    // Each repetition's runs were made back to back: compare within a repetition, then take the median.
    const deltas = names.slice(1).map((_, c) => middle(repetitions.map((r) => r[c + 1].opsPerSec / Math.max(1, r[0].opsPerSec) - 1)));
    const disturbed = repetitions.some((r) => r.disturbed === true) ? ' †' : '';
    out.push(
      `| ${cell.command.toUpperCase()}${disturbed} | ${cell.connections} | ${cell.pipeline} | ${ops.map(num).join(' | ')} | ` +
        `${deltas.map((d) => `${d >= 0 ? '+' : ''}${(d * 100).toFixed(1)}%`).join(' | ')} |`,
    );
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Report

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const num = (n: number): string => Math.round(n).toLocaleString('en-US');

function machine(): string {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const redis = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  const redisVersion = redis.status === 0 ? (/v=(\S+)/.exec(redis.stdout)?.[1] ?? redis.stdout.trim()) : 'not installed';
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  const commit = head.status === 0 ? `${head.stdout.trim()}${dirty.stdout.trim() === '' ? '' : ' (with local changes)'}` : 'unknown';
  return [
    `- protokv commit ${commit}`,
    `- CPU: ${model}, ${os.cpus().length} cores (shared by server and load generator)`,
    `- Memory: ${mib(os.totalmem())}`,
    `- OS: ${os.type()} ${os.release()}`,
    `- Node ${process.version}; Redis ${redisVersion}`,
    `- Keyspace ${KEYSPACE.toLocaleString('en-US')} keys (12-digit), ${VALUE_SIZE}-byte values, everything on 127.0.0.1`,
    PIN ? `- Servers pinned to CPU ${SERVER_CPU}, load generators to CPU ${CLIENT_CPU} (taskset)` : '- No CPU pinning',
  ].join('\n');
}

function matrixTable(rows: MatrixRow[]): string {
  const out = [
    '| store | command | connections | pipeline | protokv ops/s | protokv p50 / p99 / p99.9 ms | redis ops/s | redis p50 / p99 / p99.9 ms | protokv/redis ops | p99 protokv/redis |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const latency = (m: Measurement): string => `${m.p50Ms.toFixed(2)} / ${m.p99Ms.toFixed(2)} / ${m.p999Ms.toFixed(2)}`;
  for (const { group, cell, protokv, redis, disturbed } of rows) {
    const errs = protokv.errors > 0 ? ` (${protokv.errors} errors)` : '';
    const ratio = redis === undefined || redis.opsPerSec === 0 ? 'n/a' : `${(protokv.opsPerSec / redis.opsPerSec).toFixed(2)}×`;
    const p99Ratio = redis === undefined || redis.p99Ms === 0 ? 'n/a' : `${(protokv.p99Ms / redis.p99Ms).toFixed(2)}×`;
    out.push(
      `| ${group}${disturbed === true ? ' †' : ''} | ${cell.command.toUpperCase()} | ${cell.connections} | ${cell.pipeline} | ${num(protokv.opsPerSec)}${errs} | ${latency(protokv)} | ` +
        `${redis === undefined ? 'n/a' : num(redis.opsPerSec)} | ${redis === undefined ? 'n/a' : latency(redis)} | ${ratio} | ${p99Ratio} |`,
    );
  }
  return out.join('\n');
}

function cpuTable(rows: MatrixRow[]): string {
  const out = [
    '| store | command | connections | pipeline | protokv server CPU | protokv bench CPU | redis server CPU | other CPU (protokv / redis run) |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  const pct = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v}%`);
  for (const { group, cell, protokv, redis } of rows) {
    out.push(
      `| ${group} | ${cell.command.toUpperCase()} | ${cell.connections} | ${cell.pipeline} | ${pct(protokv.serverCpuPercent)} | ` +
        `${pct(protokv.generatorCpuPercent)} | ${pct(redis?.serverCpuPercent)} | ${pct(protokv.foreignCpuPercent)} / ${pct(redis?.foreignCpuPercent)} |`,
    );
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  const redisAvailable = haveRedis();
  if (!redisAvailable) {
    log('redis-server / redis-benchmark not found; measuring protokv only. To compare, install them:');
    log('  apt-get install redis-server redis-tools');
  }
  const sections: string[] = [`## Machine\n\n${machine()}`];
  const rows: MatrixRow[] = [];
  const respRows: MatrixRow[] = [];
  if (flags.observability === true) {
    sections.push(await observabilitySection());
    finish(sections, started);
    return;
  }

  const groups: ['memory' | 'durable', 'memory' | 'persistent', boolean][] = [['memory', 'memory', false]];
  if (flags['skip-durable'] !== true) groups.push(['durable', 'persistent', true]);
  for (const [group, store, durable] of groups) {
    const protokv = await startProtokv(store);
    const redis = redisAvailable ? await startRedis(durable) : undefined;
    try {
      log(`${group} group: ${protokv.name} on ${protokv.port} (RESP ${protokv.respPort})${redis ? `, ${redis.name} on ${redis.port}` : ''}`);
      if (!respOnly) rows.push(...(await matrix(group, protokv, redis)));
      if (redis !== undefined) respRows.push(...(await respMatrix(group, protokv, redis)));
    } finally {
      await protokv.stop();
      await redis?.stop();
    }
  }
  if (!respOnly) {
    sections.push(
      '## Throughput and latency\n\n' +
        '"memory": protokv memory store vs Redis without persistence. "durable": protokv persistent (LMDB) store vs ' +
        'Redis with `appendonly yes`, `appendfsync always`; in both, a write is acknowledged once it is on disk.\n\n' +
        matrixTable(rows) +
        '\n\nCPU use during those runs, in percent of one core (user + system; the server figure is approximate: ' +
        'it includes connecting and, for HGET, loading the keyspace). "Other CPU" is what the rest of the machine used meanwhile ' +
        `(other programs, the kernel's own threads, the hypervisor); runs with more than ${DISTURBED_PERCENT}% were measured again ` +
        `(up to ${ATTEMPTS} times) and rows marked † kept a disturbed run.\n\n` +
        cpuTable(rows),
    );
  }
  if (flags.everysec === true && !respOnly) sections.push(await everysecSection(redisAvailable));
  if (respRows.length > 0) {
    sections.push(
      '## Same load generator: redis-benchmark against both\n\n' +
        '`redis-benchmark` drives protokv through its RESP listener (`--resp`) and redis-server with identical arguments ' +
        `(\`-c 50 -P 1|16 -r ${KEYSPACE} HSET|HGET ${TABLE} __rand_int__ …\`, ${VALUE_SIZE}-byte values, keyspace loaded into both first). ` +
        'The "protokv" columns are protokv over RESP.\n\n' +
        matrixTable(respRows) +
        '\n\nCPU use, in percent of one core (the generator is redis-benchmark in both, so its column is empty):\n\n' +
        cpuTable(respRows),
    );
  }
  if (respOnly) {
    process.stdout.write(`${sections.join('\n\n')}\n`);
    return;
  }

  const ceiling = await generatorCeiling();
  sections.push(
    '## Load generator ceiling\n\n`protokv bench` against a server that answers every frame with a constant pre-encoded 200 ' +
      'response and does nothing else (`bench/null-server.ts`, also a Node process).\n\n' +
      '| command | connections | pipeline | ops/s | p50 / p99 / p99.9 ms | null server CPU | protokv bench CPU | other CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|\n' +
      ceiling
        .map(
          ({ cell, run }) =>
            `| ${cell.command.toUpperCase()}${run.disturbed === true ? ' †' : ''} | ${cell.connections} | ${cell.pipeline} | ${num(run.opsPerSec)} | ` +
            `${run.p50Ms.toFixed(2)} / ${run.p99Ms.toFixed(2)} / ${run.p999Ms.toFixed(2)} | ${run.serverCpuPercent}% | ${run.generatorCpuPercent}% | ${run.foreignCpuPercent}% |`,
        )
        .join('\n'),
  );

  if (flags['skip-memory'] !== true) {
    const memRows = await memoryPerField(redisAvailable);
    sections.push(
      `## Memory per stored field\n\n${MEMORY_FIELDS.toLocaleString('en-US')} fields in one table/hash, 16-byte keys, ${VALUE_SIZE}-byte string values; ` +
        'growth measured after loading minus before.\n\n| system | measure | bytes per field |\n|---|---|---:|\n' +
        memRows.map((r) => `| ${r.system} | ${r.measure} | ${r.bytes.toFixed(0)} |`).join('\n'),
    );
  }
  if (flags['skip-observability'] !== true) sections.push(await observabilitySection());
  finish(sections, started);
}
async function observabilitySection(): Promise<string> {
  const { rows, counted, sent, exports } = await observabilityCost();
  return (
    '## The cost of metrics and tracing\n\n' +
    'protokv with the memory store in four configurations, each its own server: "off" (`--http off`: no metrics, no tracing), ' +
    '"metrics" (the default: metrics kept, `/metrics` served), and tracing (`--otlp-endpoint`, metrics off) at sample ratios ' +
    '0.01 and 1.0, exporting OTLP/HTTP protobuf to a sink in the benchmark process. For each cell and repetition the four ran back ' +
    'to back, in rotating order; "vs off" is the median over repetitions of each run against the "off" run of the same repetition, ' +
    'and ops/s are medians.\n\n' +
    observabilityTable(rows) +
    `\n\nCheck: the metrics server timed ${num(counted)} requests (the measured runs sent it ${num(sent)}, plus warm-up and preload); ` +
    `the tracing servers made ${exports} to the sink.`
  );
}

function finish(sections: string[], started: number): void {
  if (disturbedKept > 0) {
    sections.push(
      `${disturbedKept} run(s) stayed disturbed by other load after retrying; rows marked † show one of them ` +
        '(unmarked rows show undisturbed runs).',
    );
  }
  const options = [quick ? '--quick' : '', REPEAT > 1 ? `--repeat ${REPEAT}: the repetition with the median ratio is shown` : ''].filter(Boolean).join(', ');
  sections.push(`Total run time: ${Math.round((Date.now() - started) / 1000)} s${options ? ` (${options})` : ''}.`);
  process.stdout.write(`${sections.join('\n\n')}\n`);
}



// ---------------------------------------------------------------------------------------------
// Periodic durability next to appendfsync everysec (--everysec)

/**
 * protokv's persistent store with `--durability periodic` (a write answered once committed, synced
 * within 1000 ms) next to Redis with `appendfsync everysec`: both answer a write before it is on
 * disk, and lose nothing answered when the process crashes, only on a power loss.
 */
async function everysecSection(redisAvailable: boolean): Promise<string> {
  const protokv = await startProtokv('persistent', ['--durability', 'periodic', '--sync-interval-ms', '1000'], 'persistent, periodic');
  const redis = redisAvailable ? await startRedis(true) : undefined;
  try {
    if (redis !== undefined) {
      const [reply] = await redisCall(redis.port, [['CONFIG', 'SET', 'appendfsync', 'everysec']]);
      if (reply instanceof Error) throw reply;
    }
    const everysec = redis === undefined ? undefined : { ...redis, name: 'redis (appendfsync everysec)' };
    log(`periodic group: ${protokv.name} on ${protokv.port}${everysec ? `, ${everysec.name} on ${everysec.port}` : ''}`);
    const rows = await matrix('periodic', protokv, everysec);
    return (
      '## Periodic durability next to appendfsync everysec\n\n' +
      '"periodic": protokv persistent store with `--durability periodic --sync-interval-ms 1000` vs Redis with `appendonly yes`, ' +
      '`appendfsync everysec`; in both, a write is acknowledged before it is synced (a process crash loses nothing acknowledged, ' +
      'a power loss up to about a second).\n\n' +
      matrixTable(rows) +
      '\n\nCPU use during those runs, in percent of one core:\n\n' +
      cpuTable(rows)
    );
  } finally {
    await protokv.stop();
    await redis?.stop();
  }
}

try {
  await main();
} finally {
  cleanup();
}
