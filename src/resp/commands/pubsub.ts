/**
 * Pub/sub commands. Channels are protokv topics (see ../pubsub.ts): SUBSCRIBE, UNSUBSCRIBE and
 * PUBLISH run through the service as their protobuf counterparts do; patterns (PSUBSCRIBE) are a
 * RESP feature served by the same pub/sub.
 */
import { command as request } from '../../protocol/requests.js';
import type { CommandResponse } from '../../protocol/generated/abi.js';
import type { MaybePromise } from '../../storage/store.js';
import { arg, command, reply, ReplyError, type Call, type CommandSpec } from '../command.js';
import type { ClientState } from '../client.js';
import { Glob } from '../glob.js';
import { encodeName } from '../names.js';
import { PatternMatcher, RespSubscription } from '../pubsub.js';
import type { ReplyWriter } from '../reply.js';
import { argValue } from '../values.js';
import { all, container, nameArg, then } from './shared.js';

function subscriptionCount(client: ClientState): number {
  return client.channels.size + client.patterns.size;
}

/** The (un)subscribe confirmation: a push in RESP3, an array in RESP2. */
function confirm(out: ReplyWriter, kind: string, name: Buffer | string | null, count: number): void {
  out.push(3);
  out.bulkString(kind);
  if (name === null) out.null();
  else if (typeof name === 'string') out.bulkName(name);
  else out.bulk(name);
  out.integer(count);
}

function subscribe(call: Call) {
  const { client, server } = call;
  const confirmations: { channel: Buffer; count: number; done: MaybePromise<CommandResponse> | undefined }[] = [];
  for (let i = 1; i < call.args.count; i++) {
    const name = nameArg(call, i);
    let done: MaybePromise<CommandResponse> | undefined;
    if (!client.channels.has(name)) {
      const sub = new RespSubscription(client, name, 'channel');
      // Counted at once, so a channel named twice in one SUBSCRIBE is subscribed once, as in Redis.
      client.channels.set(name, sub);
      done = server.service.execute(request('subscribe', { topic: name }), server.service.contextFor(sub, { transport: 'resp', port: server.port }));
      done = then(done, (res) => {
        if (res.status !== 200 && client.channels.get(name) === sub) client.channels.delete(name);
        return res;
      });
    }
    // Copied: with a store that subscribes asynchronously the reply is written after the input is reused.
    confirmations.push({ channel: Buffer.from(call.args.view(i)), count: subscriptionCount(client), done });
  }
  const settled = all(confirmations.map((c) => c.done));
  return reply(call, settled, (out, responses) => {
    confirmations.forEach((c, i) => {
      const res = responses[i];
      if (res !== undefined && res.status !== 200) out.error(`ERR ${res.message}`);
      else confirm(out, 'subscribe', c.channel, c.count);
    });
  });
}

function psubscribe(call: Call): void {
  const { client, server } = call;
  for (let i = 1; i < call.args.count; i++) {
    const pattern = nameArg(call, i);
    if (!client.patterns.has(pattern)) {
      const sub = new RespSubscription(client, pattern, 'pattern');
      server.service.pubsub.subscribePattern(new PatternMatcher(pattern), sub);
      client.patterns.set(pattern, sub);
    }
    confirm(call.out, 'psubscribe', call.args.view(i), subscriptionCount(client));
  }
}

/** Ends one of the client's own subscriptions, without the end notice (the command replies instead). */
function endSubscription(call: Call, kind: 'channel' | 'pattern', name: string, sub: RespSubscription): void {
  sub.quiet();
  if (kind === 'channel') {
    call.client.channels.delete(name);
    // Ends this node's own subscription, which the service does at once.
    void call.server.service.execute(request('unsubscribe', { topic: name, id: sub.id }), call.client.context);
  } else {
    call.client.patterns.delete(name);
    call.server.service.pubsub.unsubscribePattern(sub.id);
  }
}

/** UNSUBSCRIBE and PUNSUBSCRIBE: the names given, or every subscription of the kind. */
function unsubscribeKind(kind: 'channel' | 'pattern') {
  const reply = kind === 'channel' ? 'unsubscribe' : 'punsubscribe';
  return (call: Call): void => {
    const { client } = call;
    const subs = kind === 'channel' ? client.channels : client.patterns;
    if (call.args.count === 1) {
      if (subs.size === 0) confirm(call.out, reply, null, subscriptionCount(client));
      for (const [name, sub] of Array.from(subs)) {
        endSubscription(call, kind, name, sub);
        confirm(call.out, reply, name, subscriptionCount(client));
      }
      return;
    }
    for (let i = 1; i < call.args.count; i++) {
      const name = nameArg(call, i);
      const sub = subs.get(name);
      if (sub !== undefined) endSubscription(call, kind, name, sub);
      confirm(call.out, reply, call.args.view(i), subscriptionCount(client));
    }
  };
}

const unsubscribe = unsubscribeKind('channel');
const punsubscribe = unsubscribeKind('pattern');

/** Ends every subscription of `client` without replies (RESET, disconnect). */
export function dropSubscriptions(client: ClientState): void {
  for (const sub of client.channels.values()) sub.cancel();
  for (const sub of client.patterns.values()) sub.cancel();
  client.channels.clear();
  client.patterns.clear();
}

function publish(call: Call) {
  const topic = nameArg(call, 1);
  const a = call.args;
  let receivers = 0;
  const context = { ...call.client.context, onPublished: (n: number) => (receivers = n) };
  const publishRequest = request('publish', { topic, data: [argValue(a.bufs[2], a.starts[2], a.ends[2])] });
  return reply(call, call.server.service.execute(publishRequest, context), (out, res) => {
    if (res.status === 200) out.integer(receivers);
    else out.error(`ERR ${res.message}`);
  });
}

function pubsubChannels(call: Call): void {
  const a = call.args;
  if (a.count > 3) throw new ReplyError(`ERR Unknown subcommand or wrong number of arguments for 'channels'. Try PUBSUB HELP.`);
  const glob = a.count === 3 ? new Glob(a.view(2)) : undefined;
  const names: string[] = [];
  for (const topic of call.server.service.pubsub.topics()) {
    if (glob === undefined || glob.matchesAll || glob.test(encodeName(topic))) names.push(topic);
  }
  call.out.array(names.length);
  for (const n of names) call.out.bulkName(n);
}

function pubsubNumsub(call: Call): void {
  const a = call.args;
  const pubsub = call.server.service.pubsub;
  call.out.array((a.count - 2) * 2);
  for (let i = 2; i < a.count; i++) {
    call.out.bulk(a.view(i));
    call.out.integer(pubsub.subscriberCount(nameArg(call, i)));
  }
}

function pubsubNumpat(call: Call): void {
  call.out.integer(call.server.service.pubsub.patternCount);
}

const pubsubFlags = ['pubsub', 'noscript', 'loading', 'stale'];

export const pubsubCommands: CommandSpec[] = [
  command({
    name: 'subscribe', arity: -2, run: subscribe, group: 'pubsub', since: '2.0.0', inSubscribedMode: true,
    flags: pubsubFlags, aclCategories: ['@pubsub', '@slow'],
    summary: 'Listen for messages published to the given channels', complexity: 'O(N) where N is the number of channels to subscribe to.',
    args: [arg.string('channel', { multiple: true })],
  }),
  command({
    name: 'unsubscribe', arity: -1, run: unsubscribe, group: 'pubsub', since: '2.0.0', inSubscribedMode: true,
    flags: pubsubFlags, aclCategories: ['@pubsub', '@slow'],
    summary: 'Stop listening for messages posted to the given channels', complexity: 'O(N) where N is the number of clients already subscribed to a channel.',
    args: [arg.string('channel', { optional: true, multiple: true })],
  }),
  command({
    name: 'psubscribe', arity: -2, run: psubscribe, group: 'pubsub', since: '2.0.0', inSubscribedMode: true,
    flags: pubsubFlags, aclCategories: ['@pubsub', '@slow'],
    summary: 'Listen for messages published to channels matching the given patterns', complexity: 'O(N) where N is the number of patterns the client is already subscribed to.',
    args: [arg.pattern('pattern', { multiple: true })],
  }),
  command({
    name: 'punsubscribe', arity: -1, run: punsubscribe, group: 'pubsub', since: '2.0.0', inSubscribedMode: true,
    flags: pubsubFlags, aclCategories: ['@pubsub', '@slow'],
    summary: 'Stop listening for messages posted to channels matching the given patterns',
    complexity: 'O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client).',
    args: [arg.pattern('pattern', { optional: true, multiple: true })],
  }),
  command({
    name: 'publish', arity: 3, run: publish, group: 'pubsub', since: '2.0.0',
    flags: ['pubsub', 'loading', 'stale', 'fast'], aclCategories: ['@pubsub', '@fast'],
    summary: 'Post a message to a channel',
    complexity: 'O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client).',
    args: [arg.string('channel'), arg.string('message')],
  }),
  container('pubsub', 'A container for Pub/Sub commands', 'pubsub', '2.8.0', [
    command({
      name: 'pubsub|channels', arity: -2, run: pubsubChannels, group: 'pubsub', since: '2.8.0',
      flags: ['pubsub', 'loading', 'stale'], aclCategories: ['@pubsub', '@slow'],
      summary: 'List active channels', complexity: 'O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)',
      args: [arg.pattern('pattern', { optional: true })],
    }),
    command({
      name: 'pubsub|numsub', arity: -2, run: pubsubNumsub, group: 'pubsub', since: '2.8.0',
      flags: ['pubsub', 'loading', 'stale'], aclCategories: ['@pubsub', '@slow'],
      summary: 'Get the count of subscribers for channels', complexity: 'O(N) for the NUMSUB subcommand, where N is the number of requested channels',
      args: [arg.string('channel', { optional: true, multiple: true })],
    }),
    command({
      name: 'pubsub|numpat', arity: 2, run: pubsubNumpat, group: 'pubsub', since: '2.8.0',
      flags: ['pubsub', 'loading', 'stale'], aclCategories: ['@pubsub', '@slow'],
      summary: 'Get the count of unique patterns pattern subscriptions',
    }),
  ], [
    'CHANNELS [<pattern>]',
    "    Return the currently active channels matching a <pattern> (default: '*').",
    'NUMPAT',
    '    Return number of subscriptions to patterns.',
    'NUMSUB [<channel> ...]',
    '    Return the number of subscribers for the specified channels, excluding',
    '    pattern subscriptions(default: no channels).',
  ]),
];
