/**
 * One benchmark run end to end: connect, pre-load, generate load, summarize.
 */
import { formatListenAddress } from '../config.js';
import { openStreams, loadTls, type BenchTarget } from './connect.js';
import type { BenchOptions } from './options.js';
import { needsPreload, preload } from './preload.js';
import { formatProgress, summarize, type BenchReport } from './report.js';
import { startRun, type RunProgress } from './runner.js';
import { createWorkload } from './workload.js';

/** Where a run writes: the progress line goes to `stderr`, and only when it is a terminal. */
export interface BenchOutput {
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

/** Why a run could not take place at all (nothing to connect to, unreadable TLS files…). */
export class BenchSetupError extends Error {
  override readonly name = 'BenchSetupError';
}

/** Runs the benchmark described by `options` and returns its report. */
export async function runBench(options: BenchOptions, output: BenchOutput): Promise<BenchReport> {
  let tls: BenchTarget['tls'];
  if (options.tls !== undefined) {
    try {
      tls = await loadTls(options.tls);
    } catch (err) {
      throw new BenchSetupError(`cannot read the TLS files: ${(err as Error).message}`);
    }
  }
  const target: BenchTarget = { host: options.host, port: options.port, tls, mux: options.mux, websocket: options.websocket };
  const address = formatListenAddress(options);
  let set;
  try {
    set = await openStreams(target, options.connections);
  } catch (err) {
    throw new BenchSetupError(`cannot connect to ${address}: ${(err as Error).message}`);
  }
  try {
    if (set.streams.length === 0) {
      throw new BenchSetupError(`cannot connect to ${address}: ${set.failures[0]?.message ?? 'no connection opened'}`);
    }
    const spec = { command: options.command, table: options.table, keyspace: options.keyspace, valueSize: options.valueSize, fields: options.fields };
    let preloaded = 0;
    if (needsPreload(options.command) && !options.noPreload) {
      const stream = await set.extra();
      const tty = output.stderr.isTTY === true;
      if (tty) output.stderr.write(`loading the keyspace into ${address}…`);
      try {
        preloaded = await preload(stream, spec);
      } catch (err) {
        throw new BenchSetupError(`loading the keyspace into ${address} failed: ${(err as Error).message}`);
      } finally {
        if (tty) output.stderr.write('\r\x1b[K');
      }
    }
    const cpuBefore = process.cpuUsage();
    const run = startRun({
      streams: set.streams,
      workload: createWorkload(spec),
      pipeline: options.pipeline,
      requests: options.requests,
      durationMs: options.durationSec === undefined ? undefined : options.durationSec * 1000,
    });
    const stopProgress = showProgress(output, () => run.progress(), options);
    const result = await run.done;
    const cpu = process.cpuUsage(cpuBefore);
    stopProgress();
    return summarize(options, result, set.failures.length, preloaded, cpu);
  } finally {
    await set.close();
  }
}

/** Rewrites a progress line on a terminal four times a second; returns the function that clears it. */
function showProgress(output: BenchOutput, progress: () => RunProgress, options: BenchOptions): () => void {
  if (output.stderr.isTTY !== true) return () => {};
  let previous: RunProgress | undefined;
  const timer = setInterval(() => {
    const p = progress();
    output.stderr.write(`\r${formatProgress(p, previous, options.requests, options.durationSec === undefined ? undefined : options.durationSec * 1000)}\x1b[K`);
    previous = p;
  }, 250);
  timer.unref();
  return () => {
    clearInterval(timer);
    output.stderr.write('\r\x1b[K');
  };
}
