/**
 * The long socket fuzzer: `npm run fuzz -- --frames 1000000 --connections 100`.
 *
 * Starts a protokv server (memory store) in a child process, throws random, mutated and hostile
 * frames at it from many connections (see test/fuzz/socket-fuzzer.ts), checks every answer
 * against what the bytes sent predict, then checks that the server still answers correctly, has
 * no connection left, and that its memory, once the stored keys are removed, is back near where
 * it started. Prints the counts; exits 1 on any failure.
 *
 * Flags: --frames N (200000), --connections N (100), --seed N (random), --max-frame-size BYTES
 * (1048576: the server's limit, which bombs and oversize headers are built against),
 * --replay SEED[,SEED…] (run just those sessions, by the seeds failures print, with the same
 * --max-frame-size as the run that printed them).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { connect } from '../src/client/client.js';
import { forkServer, type ServerStats } from '../test/fuzz/server-process.js';
import { runSocketFuzzer, type FuzzReport } from '../test/fuzz/socket-fuzzer.js';

const { values: flags } = parseArgs({
  options: {
    frames: { type: 'string', default: '200000' },
    connections: { type: 'string', default: '100' },
    seed: { type: 'string' },
    'max-frame-size': { type: 'string', default: String(1024 * 1024) },
    replay: { type: 'string' },
  },
  strict: true,
});

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`--${name} must be a positive integer, not ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

const frames = positive('frames', flags.frames);
const connections = positive('connections', flags.connections);
const maxFrameSize = positive('max-frame-size', flags['max-frame-size']);
const seed = flags.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : positive('seed', flags.seed);
const replay = flags.replay?.split(',').map((s) => positive('replay', s.trim()));

const MIB = 1024 * 1024;
const mib = (n: number): string => `${(n / MIB).toFixed(1)} MiB`;
const count = (n: number): string => n.toLocaleString('en-US');
const counts = (record: Record<string, number>): string =>
  Object.entries(record)
    .map(([k, v]) => `${k} ${count(v)}`)
    .join(', ');

process.stdout.write(
  replay === undefined
    ? `protokv socket fuzzer: ${count(frames)} frames over ${connections} concurrent connections, ` +
        `max frame size ${count(maxFrameSize)} bytes, seed ${seed}\n`
    : `protokv socket fuzzer: replaying sessions ${replay.join(', ')}, max frame size ${count(maxFrameSize)} bytes\n`,
);

const server = await forkServer({ maxFrameSize });
let failed = false;
const problem = (text: string): void => {
  failed = true;
  process.stdout.write(`FAIL: ${text}\n`);
};

try {
  const before = await server.stats({ gc: true });
  const start = performance.now();
  const report: FuzzReport = await runSocketFuzzer({
    port: server.port,
    connections,
    frames,
    seed,
    maxFrameSize,
    junkAfterOversize: true,
    replay,
    progressEvery: Math.max(10_000, Math.round(frames / 20)),
    onProgress: (r) => {
      const seconds = (performance.now() - start) / 1000;
      void server.stats().then(
        (s) =>
          process.stderr.write(
            `  ${count(r.framesSent)} frames, ${count(r.sessions)} connections, ${count(r.failureCount)} failures, ` +
              `${Math.round(r.framesSent / seconds)} frames/s, server RSS ${mib(s.rss)}, ${s.connections} open\n`,
          ),
        () => {},
      );
    },
  });
  const seconds = (performance.now() - start) / 1000;

  let answers = 'ok';
  try {
    const kv = await connect({ host: '127.0.0.1', port: server.port });
    const marker = `after-fuzz-${seed}`;
    await kv.hset(marker, 'k', marker);
    if ((await kv.hget(marker, 'k')) !== marker) answers = 'WRONG VALUE';
    await kv.close();
  } catch (err) {
    answers = `FAILED (${(err as Error).message})`;
  }
  const left = await server.connectionsSettle(15_000);
  const withData: ServerStats = await server.stats({ gc: true });
  const after: ServerStats = await server.stats({ gc: true, reset: true });

  const rows: [string, string][] = [
    ['duration', `${seconds.toFixed(1)} s (${count(Math.round(report.framesSent / seconds))} frames/s)`],
    ['frames sent', count(report.framesSent)],
    ['bytes sent', count(report.bytesSent)],
    ['connections', count(report.sessions)],
    ['frame kinds', counts(report.frameKinds)],
    ['connection endings', counts(report.endings)],
    ['responses by status', counts(report.responses)],
    ['closed by server after 413', count(report.closedAfter413)],
    ['subscriptions', count(report.subscriptions)],
    ['failures', count(report.failureCount)],
    ['answers after the run', answers],
    ['connections left on the server', count(left)],
    ['keys stored by the run', count(withData.storedEntries)],
    ['server RSS', `${mib(before.rss)} before, ${mib(withData.rss)} after, ${mib(after.rss)} after removing the keys`],
    ['server heap used', `${mib(before.heapUsed)} before, ${mib(withData.heapUsed)} after, ${mib(after.heapUsed)} after removing the keys`],
    ['server array buffers', `${mib(before.arrayBuffers)} before, ${mib(after.arrayBuffers)} after removing the keys`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);

  for (const f of report.failures) process.stdout.write(`  - ${f}\n`);
  if (report.failureCount > 0) problem(`${report.failureCount} answers differed from the prediction`);
  if (answers !== 'ok') problem(`the server did not answer correctly after the run: ${answers}`);
  if (left > 0) problem(`${left} connections left open on the server`);
  if (after.subscriptions > 0) problem(`${after.subscriptions} subscriptions outlived their connections`);
  // Generous: catches connections or buffers kept alive, not allocator noise.
  if (after.heapUsed > before.heapUsed + 64 * MIB) problem('server heap did not come back near its baseline');
  if (after.arrayBuffers > before.arrayBuffers + 64 * MIB) problem('server buffers did not come back near their baseline');
} catch (err) {
  problem(`${(err as Error).message}\n${server.stderr()}`);
} finally {
  await server.close();
}
process.stdout.write(failed ? 'result: FAIL\n' : 'result: ok\n');
process.exit(failed ? 1 : 0);
