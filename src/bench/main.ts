/**
 * Runs `protokv bench` on its own (`node dist/src/bench/main.js [flags]`), without the rest of the
 * CLI; the comparison script starts the load generator this way when needed.
 */
import { benchCommand } from '../cli/bench.js';

process.exitCode = await benchCommand(process.argv.slice(2));
