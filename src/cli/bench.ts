/**
 * `protokv bench`: the load generator's command line (flags in `bench/options.ts`).
 */
import { formatListenAddress } from '../config.js';
import { BenchSetupError, runBench } from '../bench/bench.js';
import { BENCH_HELP, parseBenchArgs, UsageError, type BenchOptions } from '../bench/options.js';
import { formatReport } from '../bench/report.js';

export { BENCH_HELP } from '../bench/options.js';

/** Where `benchCommand` writes; defaults to the process's streams. */
export interface BenchIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown; isTTY?: boolean };
}

/**
 * Runs `protokv bench` with `argv` (the arguments after `bench`) and returns the exit code:
 * 0 when every request succeeded, 1 when there were errors or nothing could run, 2 for bad flags.
 * With `--json` the report is one JSON object on the last line of stdout.
 */
export async function benchCommand(argv: string[], io: BenchIo = process): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseBenchArgs(argv);
    if (parsed.help) {
      io.stdout.write(BENCH_HELP);
      return 0;
    }
    options = parsed.options;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`protokv bench: ${err.message}\nRun "protokv bench --help" for the options.\n`);
    return 2;
  }
  if (options.mux === 'yamux' && !(await yamuxAvailable())) {
    io.stderr.write('protokv bench: --mux yamux is not supported yet by this build\n');
    return 2;
  }
  try {
    const report = await runBench(options, io);
    io.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report, formatListenAddress(options)));
    return report.errors > 0 || report.aborted !== undefined || report.requests === 0 ? 1 : 0;
  } catch (err) {
    if (!(err instanceof BenchSetupError)) throw err;
    io.stderr.write(`protokv bench: ${err.message}\n`);
    return 1;
  }
}

async function yamuxAvailable(): Promise<boolean> {
  try {
    const mod = await import('../transport/yamux.js');
    return typeof mod.YamuxSession === 'function';
  } catch {
    return false;
  }
}
