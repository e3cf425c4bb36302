/**
 * The server's whole per-request path in JavaScript, without the kernel: `serveStream` over
 * in-process streams, so that frame decoding, request decoding, execution, response encoding,
 * the ordered output queue and write batching are measured together and nothing else. Each round
 * hands every stream one chunk of `--pipeline` request frames (as one socket read would), then
 * lets the event loop turn (as after one poll phase); writes complete on the next tick.
 *
 * What it leaves out — system calls, the load generator, scheduling — is what makes the network
 * benchmarks noisy on a shared machine; CPU time per request here moves only with our own code.
 *
 * `npm run bench:stream-path [-- --pipeline 16 --streams 50 --seconds 2 --repeat 5]`
 */
import { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { serveStream } from '../src/transport/stream-server.js';
import { requests } from '../src/protocol/requests.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { encodeFrame } from '../src/codec/frame.js';
import { benchValue, keyName } from '../src/bench/workload.js';

const { values: flags } = parseArgs({
  options: {
    pipeline: { type: 'string', default: '16' },
    streams: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '5' },
  },
});
const PIPELINE = Number(flags.pipeline);
const STREAMS = Number(flags.streams);
const SECONDS = Number(flags.seconds);
const REPEAT = Number(flags.repeat);
const KEYSPACE = 10_000;
const VALUE = benchValue(32);

/** A stream whose reads we push and whose writes are counted and dropped. */
class CountingStream extends Duplex {
  written = 0;
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written += chunk.length;
    process.nextTick(callback);
  }
}

/** `count` chunks of PIPELINE random frames of `command`, reused round after round. */
function chunks(command: 'hget' | 'hset', count: number): Buffer[] {
  const out: Buffer[] = [];
  for (let c = 0; c < count; c++) {
    const frames: Uint8Array[] = [];
    for (let i = 0; i < PIPELINE; i++) {
      const key = keyName(Math.floor(Math.random() * KEYSPACE));
      frames.push(encodeFrame(encodeRequest(command === 'hget' ? requests.hget('bench', key) : requests.hset('bench', key, VALUE))));
    }
    out.push(Buffer.concat(frames));
  }
  return out;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function measure(command: 'hget' | 'hset'): Promise<{ opsPerSec: number; cpuMicros: number }> {
  const service = new Service({ store: new MemoryStore() });
  for (let i = 0; i < KEYSPACE; i++) void service.execute(requests.hset('bench', keyName(i), VALUE));
  const streams = Array.from({ length: STREAMS }, () => new CountingStream());
  for (const s of streams) serveStream(s, service);
  const input = chunks(command, 256);
  let requestsDone = 0;
  let round = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  while (performance.now() < deadline) {
    for (let r = 0; r < 64; r++) {
      for (const s of streams) s.push(input[round++ & 255]);
      requestsDone += STREAMS * PIPELINE;
      await turn();
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const s of streams) s.destroy();
  await service.close();
  return { opsPerSec: requestsDone / elapsed, cpuMicros: (cpu.user + cpu.system) / requestsDone };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`| command | streams | pipeline | requests/s (median of ${REPEAT}) | CPU µs per request (median, min–max) |`);
console.log('|---|---:|---:|---:|---:|');
for (const command of ['hget', 'hset'] as const) {
  const runs = [];
  for (let i = 0; i < REPEAT; i++) runs.push(await measure(command));
  const cpu = runs.map((r) => r.cpuMicros);
  console.log(
    `| ${command.toUpperCase()} | ${STREAMS} | ${PIPELINE} | ${Math.round(median(runs.map((r) => r.opsPerSec))).toLocaleString('en-US')} | ` +
      `${median(cpu).toFixed(3)} (${Math.min(...cpu).toFixed(3)}–${Math.max(...cpu).toFixed(3)}) |`,
  );
}
