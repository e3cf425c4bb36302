/**
 * Server introspection: INFO, COMMAND (what redis-cli needs for its hints), CONFIG (GET/SET of the
 * parameters in redis-config.ts, RESETSTAT) and FUNCTION FLUSH (there are no functions; test
 * harnesses and tools call it to reset a server).
 */
import { type MaybePromise } from '../../storage/store.js';
import { arg, command, reply, ReplyError, replyErrors, type ArgDoc, type Call, type CommandSpec } from '../command.js';
import type { CommandEntry } from './table.js';
import { generateInfo } from '../info.js';
import type { ReplyWriter } from '../reply.js';
import { eachTablePage } from './keys.js';
import { container } from './shared.js';

function info(call: Call) {
  const a = call.args;
  const sections: string[] = [];
  for (let i = 1; i < a.count; i++) sections.push(a.latin1(i).toLowerCase());
  let tables = 0;
  // Counting keys walks the table list: only when the keyspace section is asked for.
  const wantsKeyspace = sections.length === 0 || sections.some((s) => ['keyspace', 'default', 'all', 'everything'].includes(s));
  const counted: MaybePromise<void> = wantsKeyspace
    ? eachTablePage(call.server.service.store, (page) => {
        tables += page.length;
        return true;
      })
    : undefined;
  return reply(call, counted, (out) => out.verbatim(generateInfo(call.server, sections, tables)));
}

// --- COMMAND ---

function writeCommandInfo(out: ReplyWriter, entry: CommandEntry): void {
  const spec = entry.spec;
  out.array(10);
  out.bulkString(spec.name);
  out.integer(spec.arity);
  out.set(spec.flags.length);
  for (const f of spec.flags) out.simple(f);
  out.integer(spec.firstKey);
  out.integer(spec.lastKey);
  out.integer(spec.keyStep);
  out.set(spec.aclCategories.length);
  for (const c of spec.aclCategories) out.simple(c);
  out.array(0); // tips
  out.array(0); // key specifications
  const subs = entry.subcommands === undefined ? [] : Array.from(entry.subcommands.values());
  out.array(subs.length);
  for (const sub of subs) writeCommandInfo(out, sub);
}

function writeArgDoc(out: ReplyWriter, doc: ArgDoc): void {
  const flags = [doc.optional === true ? 'optional' : undefined, doc.multiple === true ? 'multiple' : undefined].filter(
    (f): f is string => f !== undefined,
  );
  const fields = 2 + (doc.token === undefined ? 0 : 1) + (flags.length > 0 ? 1 : 0) + (doc.arguments === undefined ? 0 : 1) + (doc.type === 'key' ? 1 : 0);
  out.map(fields);
  out.bulkString('name');
  out.bulkString(doc.name);
  out.bulkString('type');
  out.bulkString(doc.type);
  if (doc.type === 'key') {
    out.bulkString('key_spec_index');
    out.integer(0);
  }
  if (doc.token !== undefined) {
    out.bulkString('token');
    out.bulkString(doc.token);
  }
  if (flags.length > 0) {
    out.bulkString('flags');
    out.set(flags.length);
    for (const f of flags) out.simple(f);
  }
  if (doc.arguments !== undefined) {
    out.bulkString('arguments');
    out.array(doc.arguments.length);
    for (const a of doc.arguments) writeArgDoc(out, a);
  }
}

function writeCommandDocs(out: ReplyWriter, entry: CommandEntry): void {
  const spec = entry.spec;
  const subs = entry.subcommands === undefined ? [] : Array.from(entry.subcommands.values());
  out.map(4 + (spec.args.length > 0 ? 1 : 0) + (subs.length > 0 ? 1 : 0));
  out.bulkString('summary');
  out.bulkString(spec.summary);
  out.bulkString('since');
  out.bulkString(spec.since);
  out.bulkString('group');
  out.bulkString(spec.group);
  out.bulkString('complexity');
  out.bulkString(spec.complexity);
  if (spec.args.length > 0) {
    out.bulkString('arguments');
    out.array(spec.args.length);
    for (const a of spec.args) writeArgDoc(out, a);
  }
  if (subs.length > 0) {
    out.bulkString('subcommands');
    out.map(subs.length);
    for (const sub of subs) {
      out.bulkString(sub.spec.name);
      writeCommandDocs(out, sub);
    }
  }
}

/** Looks a command (or `container|sub`) up by the name a client gave. */
function lookup(call: Call, name: string): CommandEntry | undefined {
  const [top, sub] = name.toLowerCase().split('|', 2);
  const entry = call.server.commands.get(top);
  if (sub === undefined) return entry;
  return entry?.subcommands?.get(sub);
}

function writeAllCommandInfo(call: Call): void {
  const entries = Array.from(call.server.commands.all());
  call.out.array(entries.length);
  for (const e of entries) writeCommandInfo(call.out, e);
}

function commandAll(call: Call): void {
  if (call.args.count > 1) {
    throw new ReplyError(`ERR unknown subcommand '${call.args.latin1(1).slice(0, 128)}'. Try COMMAND HELP.`);
  }
  writeAllCommandInfo(call);
}

function commandCount(call: Call): void {
  call.out.integer(call.server.commands.size);
}

function commandInfo(call: Call): void {
  const a = call.args;
  if (a.count === 2) {
    writeAllCommandInfo(call);
    return;
  }
  call.out.array(a.count - 2);
  for (let i = 2; i < a.count; i++) {
    const entry = lookup(call, a.latin1(i));
    if (entry === undefined) call.out.nullArray();
    else writeCommandInfo(call.out, entry);
  }
}

function commandDocs(call: Call): void {
  const a = call.args;
  let entries: CommandEntry[];
  if (a.count === 2) entries = Array.from(call.server.commands.all());
  else {
    entries = [];
    for (let i = 2; i < a.count; i++) {
      const e = lookup(call, a.latin1(i));
      if (e !== undefined) entries.push(e);
    }
  }
  call.out.map(entries.length);
  for (const e of entries) {
    call.out.bulkString(e.spec.name);
    writeCommandDocs(call.out, e);
  }
}

function commandList(call: Call): void {
  const a = call.args;
  if (a.count !== 2) throw replyErrors.syntax();
  const names: string[] = [];
  for (const e of call.server.commands.all()) {
    names.push(e.spec.name);
    if (e.subcommands !== undefined) for (const s of e.subcommands.values()) names.push(s.spec.name);
  }
  call.out.array(names.length);
  for (const n of names) call.out.bulkString(n);
}

// --- CONFIG ---

function configGet(call: Call): void {
  const a = call.args;
  const patterns: Buffer[] = [];
  for (let i = 2; i < a.count; i++) patterns.push(a.view(i));
  const pairs = call.server.config.get(patterns);
  call.out.map(pairs.length);
  for (const [name, value] of pairs) {
    call.out.bulkString(name);
    call.out.bulkString(value);
  }
}

function configSet(call: Call): void {
  const a = call.args;
  if ((a.count - 2) % 2 !== 0) throw replyErrors.arity('config|set');
  const pairs: [Buffer, Buffer][] = [];
  for (let i = 2; i < a.count; i += 2) pairs.push([a.view(i), a.view(i + 1)]);
  call.server.config.set(pairs);
  call.out.ok();
}

function configResetstat(call: Call): void {
  call.server.stats.reset();
  call.out.ok();
}

function functionFlush(call: Call): void {
  const a = call.args;
  if (a.count > 3 || (a.count === 3 && !a.is(2, 'async') && !a.is(2, 'sync'))) {
    throw new ReplyError('ERR FUNCTION FLUSH only supports SYNC|ASYNC option');
  }
  call.out.ok();
}

function functionList(call: Call): void {
  call.out.array(0);
}

const server = { group: 'server', aclCategories: ['@slow'] };

export const introspectionCommands: CommandSpec[] = [
  command({
    name: 'info', arity: -1, run: info, since: '1.0.0', ...server, flags: ['loading', 'stale'], aclCategories: ['@slow', '@dangerous'],
    summary: 'Get information and statistics about the server', args: [arg.string('section', { optional: true, multiple: true })],
  }),
  command({
    name: 'command', arity: -1, run: commandAll, since: '2.8.13', ...server, flags: ['loading', 'stale'], aclCategories: ['@slow', '@connection'],
    summary: 'Get array of Redis command details', complexity: 'O(N) where N is the total number of Redis commands',
    subcommands: new Map(
      [
        command({ name: 'command|count', arity: 2, run: commandCount, since: '2.8.13', ...server, flags: ['loading', 'stale'], summary: 'Get total number of Redis commands' }),
        command({
          name: 'command|info', arity: -2, run: commandInfo, since: '2.8.13', ...server, flags: ['loading', 'stale'],
          summary: 'Get array of specific Redis command details, or all when no argument is given.', complexity: 'O(N) where N is the number of commands to look up',
          args: [arg.string('command-name', { optional: true, multiple: true })],
        }),
        command({
          name: 'command|docs', arity: -2, run: commandDocs, since: '7.0.0', ...server, flags: ['loading', 'stale'],
          summary: 'Get array of specific Redis command documentation', complexity: 'O(N) where N is the number of commands to look up',
          args: [arg.string('command-name', { optional: true, multiple: true })],
        }),
        command({
          name: 'command|list', arity: -2, run: commandList, since: '7.0.0', ...server, flags: ['loading', 'stale'],
          summary: 'Get an array of Redis command names', complexity: 'O(N) where N is the total number of Redis commands',
        }),
        command({
          name: 'command|help', arity: 2, since: '5.0.0', ...server, flags: ['loading', 'stale'], summary: 'Show helpful text about the different subcommands',
          run: (call) => {
            const lines = [
              'COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:',
              '(no subcommand)',
              '    Return details about all Redis commands.',
              'COUNT',
              '    Return the total number of commands in this Redis server.',
              'LIST',
              '    Return a list of all commands in this Redis server.',
              'INFO [<command-name> ...]',
              '    Return details about multiple Redis commands.',
              '    If no command names are given, documentation details for all',
              '    commands are returned.',
              'DOCS [<command-name> ...]',
              '    Return documentation details about multiple Redis commands.',
              '    If no command names are given, documentation details for all',
              '    commands are returned.',
              'HELP',
              '    Print this help.',
            ];
            call.out.array(lines.length);
            for (const l of lines) call.out.simple(l);
          },
        }),
      ].map((s) => [s.name.slice('command|'.length), s]),
    ),
  }),
  container('config', 'A container for server configuration commands', 'server', '2.0.0', [
    command({
      name: 'config|get', arity: -3, run: configGet, since: '2.0.0', ...server, flags: ['admin', 'noscript', 'loading', 'stale'],
      aclCategories: ['@admin', '@slow', '@dangerous'], summary: 'Get the values of configuration parameters',
      complexity: 'O(N) when N is the number of configuration parameters provided', args: [arg.string('parameter', { multiple: true })],
    }),
    command({
      name: 'config|set', arity: -4, run: configSet, since: '2.0.0', ...server, flags: ['admin', 'noscript', 'loading', 'stale'],
      aclCategories: ['@admin', '@slow', '@dangerous'], summary: 'Set configuration parameters to the given values',
      complexity: 'O(N) when N is the number of configuration parameters provided',
      args: [arg.block('parameter_value', [arg.string('parameter'), arg.string('value')], { multiple: true })],
    }),
    command({
      name: 'config|resetstat', arity: 2, run: configResetstat, since: '2.0.0', ...server, flags: ['admin', 'noscript', 'loading', 'stale'],
      aclCategories: ['@admin', '@slow', '@dangerous'], summary: 'Reset the stats returned by INFO',
    }),
  ], [
    'GET <pattern>',
    '    Return parameters matching the glob-like <pattern> and their values.',
    'SET <directive> <value>',
    '    Set the configuration <directive> to <value>.',
    'RESETSTAT',
    '    Reset statistics reported by the INFO command.',
  ]),
  container('function', 'A container for function commands', 'scripting', '7.0.0', [
    command({
      name: 'function|flush', arity: -2, run: functionFlush, since: '7.0.0', group: 'scripting', flags: ['write', 'noscript'],
      aclCategories: ['@write', '@slow', '@scripting'], summary: 'Deleting all functions',
      args: [arg.oneof('flush-type', [arg.token('ASYNC'), arg.token('SYNC')], { optional: true })],
    }),
    command({
      name: 'function|list', arity: -2, run: functionList, since: '7.0.0', group: 'scripting', flags: ['noscript'],
      aclCategories: ['@slow', '@scripting'], summary: 'List information about all the functions',
    }),
  ], [
    'FLUSH [ASYNC|SYNC]',
    '    Delete all the libraries and functions (protokv has none).',
    'LIST',
    '    Return information about the functions and libraries (protokv has none).',
  ]),
];
