/**
 * Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT, TIME and CLIENT. They act on
 * the client's own state (protocol version, name, reply mode) and never on data.
 */
import { arg, command, ReplyError, replyErrors, type Call, type CommandSpec } from '../command.js';
import type { ClientState } from '../client.js';
import { container, integerArg, rangeArg } from './shared.js';
import { dropSubscriptions } from './pubsub.js';

/** The Redis version whose behaviour the listener follows, reported by HELLO and INFO. */
export const REDIS_VERSION = '7.0.15';

function ping(call: Call): void {
  const a = call.args;
  if (a.count > 2) throw replyErrors.arity('ping');
  const out = call.out;
  const client = call.client;
  if (out.protocol === 2 && client.channels.size + client.patterns.size > 0) {
    out.array(2);
    out.bulkString('pong');
    if (a.count === 1) out.bulkString('');
    else out.bulk(a.view(1));
    return;
  }
  if (a.count === 1) out.simple('PONG');
  else out.bulk(a.view(1));
}

function echo(call: Call): void {
  call.out.bulk(call.args.view(1));
}

function quit(call: Call): void {
  call.out.ok();
  call.client.closeAfterReply();
}

function reset(call: Call): void {
  const client = call.client;
  dropSubscriptions(client);
  client.protocol = 2;
  call.out.protocol = 2;
  client.name = undefined;
  client.replyMode = 'on';
  call.out.simple('RESET');
}

/** Client names: non-empty printable ASCII without spaces (Redis's rule); empty unsets. */
function setName(client: ClientState, name: Buffer): void {
  for (const b of name) {
    if (b < 0x21 || b > 0x7e) throw new ReplyError('ERR Client names cannot contain spaces, newlines or special characters.');
  }
  client.name = name.length === 0 ? undefined : Buffer.from(name);
}

/** The default user has no password: any password is accepted for it, any other user does not exist. */
function authenticate(user: Buffer): void {
  if (user.toString('latin1') !== 'default') {
    throw new ReplyError('WRONGPASS invalid username-password pair or user is disabled.');
  }
}

function hello(call: Call): void {
  const a = call.args;
  const client = call.client;
  let version = 0;
  let next = 1;
  if (a.count >= 2) {
    const v = integerArg(call, 1, () => new ReplyError('ERR Protocol version is not an integer or out of range'));
    if (v < 2n || v > 3n) throw new ReplyError('NOPROTO unsupported protocol version');
    version = Number(v);
    next = 2;
  }
  for (let j = next; j < a.count; j++) {
    const more = a.count - 1 - j;
    if (a.is(j, 'auth') && more >= 2) {
      authenticate(a.view(j + 1));
      j += 2;
    } else if (a.is(j, 'setname') && more >= 1) {
      setName(client, a.view(j + 1));
      j++;
    } else {
      throw new ReplyError(`ERR Syntax error in HELLO option '${a.view(j).toString('latin1')}'`);
    }
  }
  if (version !== 0) {
    client.protocol = version as 2 | 3;
    call.out.protocol = client.protocol;
  }
  const out = call.out;
  out.map(7);
  out.bulkString('server');
  out.bulkString('redis');
  out.bulkString('version');
  out.bulkString(REDIS_VERSION);
  out.bulkString('proto');
  out.integer(client.protocol);
  out.bulkString('id');
  out.integer(client.id);
  out.bulkString('mode');
  out.bulkString('standalone');
  out.bulkString('role');
  out.bulkString('master');
  out.bulkString('modules');
  out.array(0);
}

function auth(call: Call): void {
  const a = call.args;
  if (a.count > 3) throw replyErrors.syntax();
  if (a.count === 2) {
    throw new ReplyError('ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?');
  }
  authenticate(a.view(1));
  call.out.ok();
}

function select(call: Call): void {
  const index = rangeArg(call, 1, -(2n ** 31n), 2n ** 31n - 1n);
  if (index !== 0) throw new ReplyError('ERR DB index is out of range');
  call.out.ok();
}

function time(call: Call): void {
  const now = Date.now();
  const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000) % 1_000_000;
  call.out.array(2);
  call.out.bulkString(String(Math.floor(now / 1000)));
  call.out.bulkString(String(micros));
}

// --- CLIENT ---

/** Redis's client types for CLIENT LIST TYPE and CLIENT KILL TYPE. */
function clientType(name: string): 'normal' | 'pubsub' | 'master' | 'replica' | undefined {
  switch (name.toLowerCase()) {
    case 'normal':
      return 'normal';
    case 'pubsub':
      return 'pubsub';
    case 'master':
      return 'master';
    case 'replica':
    case 'slave':
      return 'replica';
    default:
      return undefined;
  }
}

function typeOf(client: ClientState): 'normal' | 'pubsub' {
  return client.channels.size + client.patterns.size > 0 ? 'pubsub' : 'normal';
}

function clientId(call: Call): void {
  call.out.integer(call.client.id);
}

function clientInfo(call: Call): void {
  call.out.verbatim(`${call.client.describe()}\n`);
}

function clientList(call: Call): void {
  const a = call.args;
  const clients = call.server.clients;
  let lines: string[];
  if (a.count === 4 && a.is(2, 'type')) {
    const t = clientType(a.latin1(3));
    if (t === undefined) throw new ReplyError(`ERR Unknown client type '${a.latin1(3)}'`);
    lines = Array.from(clients.values(), (c) => (typeOf(c) === t ? c.describe() : undefined)).filter((l): l is string => l !== undefined);
  } else if (a.count > 3 && a.is(2, 'id')) {
    lines = [];
    for (let i = 3; i < a.count; i++) {
      const id = integerArg(call, i, () => new ReplyError('ERR Invalid client ID'));
      const c = clients.get(Number(id));
      if (c !== undefined) lines.push(c.describe());
    }
  } else if (a.count !== 2) {
    throw replyErrors.syntax();
  } else {
    lines = Array.from(clients.values(), (c) => c.describe());
  }
  call.out.verbatim(lines.map((l) => `${l}\n`).join(''));
}

function clientKill(call: Call): void {
  const a = call.args;
  const me = call.client;
  let addr: string | undefined;
  let laddr: string | undefined;
  let type: string | undefined;
  let id: number | undefined;
  let skipMe = true;
  if (a.count === 3) {
    addr = a.latin1(2);
    skipMe = false;
  } else {
    for (let i = 2; i < a.count; i += 2) {
      const more = a.count > i + 1;
      if (more && a.is(i, 'id')) {
        id = rangeArg(call, i + 1, 1n, (1n << 63n) - 1n, () => new ReplyError('ERR client-id should be greater than 0'));
      } else if (more && a.is(i, 'type')) {
        type = clientType(a.latin1(i + 1));
        if (type === undefined) throw new ReplyError(`ERR Unknown client type '${a.latin1(i + 1)}'`);
      } else if (more && a.is(i, 'addr')) {
        addr = a.latin1(i + 1);
      } else if (more && a.is(i, 'laddr')) {
        laddr = a.latin1(i + 1);
      } else if (more && a.is(i, 'user')) {
        if (a.latin1(i + 1) !== 'default') throw new ReplyError(`ERR No such user '${a.latin1(i + 1)}'`);
      } else if (more && a.is(i, 'skipme')) {
        if (a.is(i + 1, 'yes')) skipMe = true;
        else if (a.is(i + 1, 'no')) skipMe = false;
        else throw replyErrors.syntax();
      } else {
        throw replyErrors.syntax();
      }
    }
  }
  let killed = 0;
  let killMe = false;
  for (const c of Array.from(call.server.clients.values())) {
    if (addr !== undefined && c.remoteAddress !== addr) continue;
    if (laddr !== undefined && c.localAddress !== laddr) continue;
    if (type !== undefined && typeOf(c) !== type) continue;
    if (id !== undefined && c.id !== id) continue;
    if (c === me && skipMe) continue;
    if (c === me) killMe = true;
    else c.kill();
    killed++;
  }
  if (a.count === 3) {
    if (killed === 0) throw new ReplyError('ERR No such client');
    call.out.ok();
  } else {
    call.out.integer(killed);
  }
  if (killMe) me.closeAfterReply();
}

function clientSetname(call: Call): void {
  setName(call.client, call.args.view(2));
  call.out.ok();
}

function clientGetname(call: Call): void {
  const name = call.client.name;
  if (name === undefined) call.out.null();
  else call.out.bulk(name);
}

function clientReply(call: Call): void {
  const a = call.args;
  const client = call.client;
  if (a.is(2, 'on')) {
    client.replyMode = 'on';
    call.out.ok();
  } else if (a.is(2, 'off')) {
    client.replyMode = 'off';
  } else if (a.is(2, 'skip')) {
    if (client.replyMode !== 'off') client.replyMode = 'skip';
  } else {
    throw replyErrors.syntax();
  }
}

function clientNoEvict(call: Call): void {
  // protokv never evicts clients; the flag is accepted for compatibility.
  if (!call.args.is(2, 'on') && !call.args.is(2, 'off')) throw replyErrors.syntax();
  call.out.ok();
}

const connection = { group: 'connection', flags: ['noscript', 'loading', 'stale'], aclCategories: ['@slow', '@connection'] };
const clientSub = (name: string, arity: number, run: CommandSpec['run'], summary: string, since: string, args: CommandSpec['args'] = []): CommandSpec =>
  command({ name: `client|${name}`, arity, run, summary, since, args, ...connection, aclCategories: ['@slow', '@connection'] });

export const connectionCommands: CommandSpec[] = [
  command({
    name: 'ping', arity: -1, run: ping, since: '1.0.0', inSubscribedMode: true, ...connection,
    flags: ['fast'], aclCategories: ['@fast', '@connection'],
    summary: 'Ping the server', args: [arg.string('message', { optional: true })],
  }),
  command({
    name: 'echo', arity: 2, run: echo, since: '1.0.0', ...connection, flags: ['fast'], aclCategories: ['@fast', '@connection'],
    summary: 'Echo the given string', args: [arg.string('message')],
  }),
  command({
    name: 'quit', arity: -1, run: quit, since: '1.0.0', inSubscribedMode: true, ...connection,
    flags: ['allow_busy', 'noscript', 'loading', 'stale', 'fast', 'no_auth'], aclCategories: ['@fast', '@connection'],
    summary: 'Close the connection',
  }),
  command({
    name: 'reset', arity: 1, run: reset, since: '6.2.0', inSubscribedMode: true, ...connection,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'], aclCategories: ['@fast', '@connection'],
    summary: 'Reset the connection',
  }),
  command({
    name: 'hello', arity: -1, run: hello, since: '6.0.0', ...connection,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'], aclCategories: ['@fast', '@connection'],
    summary: 'Handshake with Redis', complexity: 'O(1)',
    args: [
      arg.block('arguments', [
        arg.integer('protover'),
        arg.block('username_password', [arg.string('username'), arg.string('password')], { token: 'AUTH', optional: true }),
        arg.string('clientname', { token: 'SETNAME', optional: true }),
      ], { optional: true }),
    ],
  }),
  command({
    name: 'auth', arity: -2, run: auth, since: '1.0.0', ...connection,
    flags: ['noscript', 'loading', 'stale', 'fast', 'no_auth', 'allow_busy'], aclCategories: ['@fast', '@connection'],
    summary: 'Authenticate to the server', complexity: 'O(N) where N is the number of passwords defined for the user',
    args: [arg.string('username', { optional: true }), arg.string('password')],
  }),
  command({
    name: 'select', arity: 2, run: select, since: '1.0.0', ...connection,
    flags: ['loading', 'stale', 'fast'], aclCategories: ['@fast', '@connection'],
    summary: 'Change the selected database for the current connection', args: [arg.integer('index')],
  }),
  command({
    name: 'time', arity: 1, run: time, since: '2.6.0', group: 'server',
    flags: ['loading', 'stale', 'fast'], aclCategories: ['@fast'],
    summary: 'Return the current server time',
  }),
  container('client', 'A container for client connection commands', 'connection', '2.4.0', [
    clientSub('id', 2, clientId, 'Returns the client ID for the current connection', '5.0.0'),
    clientSub('info', 2, clientInfo, 'Returns information about the current client connection.', '6.2.0'),
    clientSub('list', -2, clientList, 'Get the list of client connections', '2.4.0', [
      arg.oneof('client-type', [arg.token('NORMAL'), arg.token('MASTER'), arg.token('REPLICA'), arg.token('PUBSUB')], { token: 'TYPE', optional: true }),
      arg.integer('client-id', { token: 'ID', optional: true, multiple: true }),
    ]),
    clientSub('kill', -3, clientKill, 'Kill the connection of a client', '2.4.0', [
      arg.oneof('filter', [
        arg.string('ip:port'),
        arg.integer('client-id', { token: 'ID', optional: true }),
        arg.string('normal|master|slave|pubsub', { token: 'TYPE', optional: true }),
        arg.string('username', { token: 'USER', optional: true }),
        arg.string('ip:port', { token: 'ADDR', optional: true }),
        arg.string('ip:port', { token: 'LADDR', optional: true }),
        arg.string('yes/no', { token: 'SKIPME', optional: true }),
      ]),
    ]),
    clientSub('setname', 3, clientSetname, 'Set the current connection name', '2.6.9', [arg.string('connection-name')]),
    clientSub('getname', 2, clientGetname, 'Get the current connection name', '2.6.9'),
    clientSub('reply', 3, clientReply, 'Instruct the server whether to reply to commands', '3.2.0', [
      arg.oneof('on|off|skip', [arg.token('ON'), arg.token('OFF'), arg.token('SKIP')]),
    ]),
    clientSub('no-evict', 3, clientNoEvict, 'Set client eviction mode for the current connection', '7.0.0', [
      arg.oneof('enabled', [arg.token('ON'), arg.token('OFF')]),
    ]),
  ], [
    'GETNAME',
    '    Return the name of the current connection.',
    'ID',
    '    Return the ID of the current connection.',
    'INFO',
    '    Return information about the current client connection.',
    'KILL <ip:port>',
    '    Kill connection made from <ip:port>.',
    'KILL <option> <value> [<option> <value> [...]]',
    '    Kill connections. Options are:',
    '    * ADDR (<ip:port>|<unixsocket>:0)',
    '      Kill connections made from the specified address',
    '    * LADDR (<ip:port>|<unixsocket>:0)',
    '      Kill connections made to specified local address',
    '    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)',
    '      Kill connections by type.',
    '    * USER <username>',
    '      Kill connections authenticated by <username>.',
    '    * SKIPME (YES|NO)',
    '      Skip killing current connection (default: yes).',
    'LIST [options ...]',
    '    Return information about client connections. Options:',
    '    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)',
    '      Return clients of specified type.',
    'REPLY (ON|OFF|SKIP)',
    '    Control the replies sent to the current connection.',
    'SETNAME <name>',
    '    Assign the name <name> to the current connection.',
    'NO-EVICT (ON|OFF)',
    '    Protect current client connection from eviction.',
  ]),
];
