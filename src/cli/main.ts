/**
 * The `protokv` command line: `serve`, `cert`, `bench`, and one client sub-command per protocol
 * command.
 */
import { certCommand } from './cert.js';
import { CLIENT_COMMANDS, CONNECTION_HELP, clientCommand, subscribeCommand } from './client-commands.js';
import { serveCommand } from './serve.js';
import { packageVersion } from './version.js';

function usage(): string {
  const rows: [string, string][] = [
    ['serve [options]', 'run the server (protokv serve --help for its settings)'],
    ['cert --out DIR', 'create a CA, a server and a client certificate'],
    ['bench [options]', 'measure a server: throughput and latency (protokv bench --help)'],
    ...Object.values(CLIENT_COMMANDS).map((c): [string, string] => [c.usage, c.summary]),
    ['subscribe TOPIC', 'print messages published to TOPIC until Ctrl-C'],
  ];
  const width = Math.max(...rows.map(([u]) => u.length)) + 2;
  return `usage: protokv COMMAND [ARGS] [options]\n\nCommands:\n${rows
    .map(([u, s]) => `  ${u.padEnd(width)}${s}\n`)
    .join('')}\n${CONNECTION_HELP}`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  switch (name) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage());
      return name === undefined ? 2 : 0;
    case '--version':
    case '-v':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'serve':
      return serveCommand(rest);
    case 'cert':
      return certCommand(rest);
    case 'bench': {
      // Loaded on demand: only the benchmark needs the histogram library.
      const { benchCommand } = await import('./bench.js');
      return benchCommand(rest);
    }
    case 'subscribe':
      return subscribeCommand(rest);
    default:
      if (Object.hasOwn(CLIENT_COMMANDS, name)) return clientCommand(name, rest);
      process.stderr.write(`protokv: unknown command "${name}"\n\n${usage()}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`protokv: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
