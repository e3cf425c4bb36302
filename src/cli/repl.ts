/**
 * `protokv` with no command (or `protokv repl`): an interactive prompt running the same commands
 * as the command line, on one connection that reconnects by itself, with history kept in
 * `~/.protokv_history` (`PROTOKV_HISTORY` names another file; `off` keeps none). Fed by a pipe
 * instead of a terminal it runs each line as a command and exits 1 if any failed.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { connect, type KvClient } from '../client/client.js';
import {
  CLIENT_COMMANDS,
  CONNECTION_HELP,
  checkArity,
  connectOptions,
  parseCommandArgs,
  printMessages,
  render,
  reportConnection,
  reportError,
  UsageError,
  valueReader,
} from './client-commands.js';

const HISTORY_SIZE = 1000;

export const REPL_HELP = `usage: protokv [repl] [options]

Interactive mode: type commands as on the command line, without "protokv" (hset users ada Lovelace,
hget users ada --json, subscribe news — Ctrl-C ends a subscription). Quote arguments with spaces.
help lists the commands; quit, exit or Ctrl-D leaves. --json applies to every command.

${CONNECTION_HELP}`;

/** Splits a line like a shell would: spaces separate, quotes group, backslash escapes. */
export function splitLine(line: string): string[] {
  const out: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(current);
      current = '';
      inWord = false;
    } else {
      current += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new UsageError(`unterminated ${quote} quote`);
  if (inWord) out.push(current);
  return out;
}

function historyFile(): string | undefined {
  const configured = process.env.PROTOKV_HISTORY;
  if (configured === 'off') return undefined;
  return configured ?? path.join(homedir(), '.protokv_history');
}

function helpText(): string {
  const rows = [...Object.values(CLIENT_COMMANDS).map((c) => [c.usage, c.summary]), ['subscribe TOPIC', 'print messages until Ctrl-C'], ['quit', 'leave']];
  const width = Math.max(...rows.map(([u]) => u.length)) + 2;
  return rows.map(([u, s]) => `  ${u.padEnd(width)}${s}\n`).join('');
}

export async function replCommand(argv: string[]): Promise<number> {
  let kv: KvClient | undefined;
  let json: boolean | undefined;
  try {
    const { values, positionals } = parseCommandArgs(argv);
    if (values.help) {
      process.stdout.write(REPL_HELP);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unknown command "${positionals[0]}"`);
    json = values.json;
    kv = await connect(await connectOptions(values, process.env, true));
  } catch (err) {
    return reportError(err);
  }
  const interactive = process.stdin.isTTY === true;
  const file = interactive ? historyFile() : undefined;
  const history = file === undefined ? [] : await readFile(file, 'utf8').then((t) => t.split('\n').filter(Boolean).reverse(), () => []);
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: interactive,
    history: history.slice(0, HISTORY_SIZE),
    historySize: HISTORY_SIZE,
    prompt: `${kv.address}> `,
  });
  const say = (text: string): void => void process.stderr.write(text);
  reportConnection(kv, say);
  let stopSubscription: (() => void) | undefined;
  rl.on('SIGINT', () => {
    if (stopSubscription !== undefined) stopSubscription();
    else rl.close();
  });
  let failures = 0;
  if (interactive) rl.prompt();
  for await (const line of rl) {
    const failed = await runLine(kv, line, json, (stop) => (stopSubscription = stop), (question) => confirm(rl, interactive, question));
    stopSubscription = undefined;
    if (failed === 'quit') break;
    if (failed) failures++;
    if (interactive) rl.prompt();
  }
  rl.close();
  if (file !== undefined) {
    const kept = (rl as unknown as { history: string[] }).history.slice(0, HISTORY_SIZE).reverse();
    await writeFile(file, kept.map((l) => `${l}\n`).join(''), { mode: 0o600 }).catch(() => {});
  }
  await kv.close();
  return !interactive && failures > 0 ? 1 : 0;
}

/** Asks at the prompt; a piped session cannot answer, so it says no (use --yes there). */
function confirm(rl: Interface, interactive: boolean, question: string): Promise<boolean> {
  if (!interactive) return Promise.resolve(false);
  return new Promise((resolve) =>
    rl.question(question, (answer) => {
      // An answer is not a command: keep it out of the history.
      const history = (rl as unknown as { history: string[] }).history;
      if (history[0] === answer) history.shift();
      resolve(/^y(es)?$/i.test(answer.trim()));
    }),
  );
}

/** Runs one line; true when it failed, `'quit'` to leave. */
async function runLine(
  kv: KvClient,
  line: string,
  json: boolean | undefined,
  onSubscribed: (stop: () => void) => void,
  ask: (question: string) => Promise<boolean>,
): Promise<boolean | 'quit'> {
  const err = (e: unknown): true => {
    reportError(e);
    return true;
  };
  let words: string[];
  try {
    words = splitLine(line);
  } catch (e) {
    return err(e);
  }
  const [name, ...rest] = words;
  if (name === undefined) return false;
  if (name === 'quit' || name === 'exit') return 'quit';
  if (name === 'help') {
    process.stdout.write(helpText());
    return false;
  }
  try {
    const { values, positionals } = parseCommandArgs(rest);
    const asJson = values.json ?? json;
    if (name === 'subscribe') {
      if (positionals.length !== 1) throw new UsageError('usage: subscribe TOPIC');
      const sub = await kv.subscribe(positionals[0]);
      process.stderr.write(`subscribed to ${JSON.stringify(sub.topic)} as id ${sub.id}; Ctrl-C to stop\n`);
      onSubscribed(() => void sub.unsubscribe());
      await printMessages(sub, asJson, (t) => process.stdout.write(t));
      return false;
    }
    const spec = Object.hasOwn(CLIENT_COMMANDS, name) ? CLIENT_COMMANDS[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown command "${name}" (help lists them)`);
    checkArity(spec, positionals);
    const value = valueReader(values.type ?? 'string', {
      literal: values.literal,
      readStdin: () => Promise.reject(new UsageError('standard input is where the commands come from here: use @FILE')),
    });
    const out = await spec.run(kv, positionals, {
      value,
      options: values,
      emit: (o) => process.stdout.write(render(o, asJson)),
      confirm: ask,
    });
    if (out !== undefined) process.stdout.write(render(out, asJson));
    return false;
  } catch (e) {
    return err(e);
  }
}
