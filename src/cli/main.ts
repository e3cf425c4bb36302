/**
 * The `protokv` command line: `serve`, `cert`, `bench`, one client sub-command per protocol
 * command, `subscribe`, and the interactive mode (no command, or `repl`). Server-side commands
 * are loaded on demand, so a client command never loads the store or the logger.
 */
import { CLIENT_COMMANDS, CONNECTION_HELP, clientCommand, subscribeCommand } from './client-commands.js';
import { packageVersion } from './version.js';

function usage(): string {
  const rows: [string, string][] = [
    ['serve [options]', 'run the server (protokv serve --help for its settings)'],
    ['cert --out DIR', 'create a CA, a server and a client certificate'],
    ['bench [options]', 'measure a server: throughput and latency (protokv bench --help)'],
    ...Object.values(CLIENT_COMMANDS).map((c): [string, string] => [c.usage, c.summary]),
    ['subscribe TOPIC', 'print messages published to TOPIC until Ctrl-C'],
    ['repl (or no command)', 'interactive mode: the same commands at a prompt, with history'],
  ];
  const width = Math.max(...rows.map(([u]) => u.length)) + 2;
  return `usage: protokv COMMAND [ARGS] [options]\n\nCommands:\n${rows
    .map(([u, s]) => `  ${u.padEnd(width)}${s}\n`)
    .join('')}\n${CONNECTION_HELP}`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  switch (name) {
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage());
      return 0;
    case '--version':
    case '-v':
      process.stdout.write(`${packageVersion()}\n`);
      return 0;
    case 'serve':
      return (await import('./serve.js')).serveCommand(rest);
    case 'cert':
      return (await import('./cert.js')).certCommand(rest);
    case 'bench':
      return (await import('./bench.js')).benchCommand(rest);
    case 'subscribe':
      return subscribeCommand(rest);
    case undefined:
    case 'repl':
      return (await import('./repl.js')).replCommand(rest);
    default:
      if (name.startsWith('-')) return (await import('./repl.js')).replCommand(argv);
      if (Object.hasOwn(CLIENT_COMMANDS, name)) return clientCommand(name, rest);
      process.stderr.write(`protokv: unknown command "${name}"\n\n${usage()}`);
      return 2;
  }
}

// `protokv … | head`: the reader went away; stop quietly, as Unix tools do.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`protokv: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
