/**
 * `npm run bench:pubsub`: one publisher, many subscribers, messages delivered per second — for
 * protokv and, in the same run, for redis-server's PUBLISH/SUBSCRIBE (when installed).
 *
 *   node dist/bench/pubsub.js [--subscribers 100] [--messages 20000] [--size 32] [--window 64]
 *
 * Servers run as child processes on loopback ports the OS picks. Delivery is counted in bytes on
 * raw sockets (every message has the same encoded size), so the subscribers cost next to nothing
 * and the servers are what is measured.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeFrame } from '../src/codec/frame.js';
import { okValues, requests } from '../src/protocol/requests.js';
import { toValue } from '../src/protocol/values.js';
import { encodeRequest, encodeResponse } from '../src/protocol/wire.js';

const { values: flags } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '100' },
    messages: { type: 'string', default: '20000' },
    size: { type: 'string', default: '32' },
    window: { type: 'string', default: '64' },
  },
});
const SUBSCRIBERS = Number(flags.subscribers);
const MESSAGES = Number(flags.messages);
const SIZE = Number(flags.size);
const WINDOW = Number(flags.window);
const TOPIC = 'bench';
const BIN = fileURLToPath(new URL('../../bin/protokv.js', import.meta.url));
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

interface Peer {
  name: string;
  port: number;
  /** Bytes one subscriber receives per message. */
  messageBytes: number;
  /** Bytes of the answer to SUBSCRIBE. */
  subscribeReplyBytes: number;
  subscribeFrame: Buffer;
  publishFrame: Buffer;
  /** Counts publish replies in a chunk of the publisher's input (stateful across chunks). */
  replyCounter(): (chunk: Buffer) => number;
}

async function connectTo(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  await once(s, 'connect');
  s.setNoDelay(true);
  return s;
}

async function run(peer: Peer): Promise<number> {
  const subs = await Promise.all(Array.from({ length: SUBSCRIBERS }, () => connectTo(peer.port)));
  const expected = peer.subscribeReplyBytes + MESSAGES * peer.messageBytes;
  let done = 0;
  const allDelivered = new Promise<void>((resolve) => {
    for (const s of subs) {
      let got = 0;
      s.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got >= expected && got - chunk.length < expected && ++done === SUBSCRIBERS) resolve();
      });
    }
  });
  // Wait until every subscription is in place: each has received its SUBSCRIBE reply.
  await Promise.all(
    subs.map(async (s) => {
      let got = 0;
      const ready = new Promise<void>((resolve) => {
        const onData = (c: Buffer): void => {
          got += c.length;
          if (got >= peer.subscribeReplyBytes) {
            s.off('data', onData);
            resolve();
          }
        };
        s.on('data', onData);
      });
      s.write(peer.subscribeFrame);
      await ready;
    }),
  );
  const pub = await connectTo(peer.port);
  const count = peer.replyCounter();
  const start = process.hrtime.bigint();
  let sent = 0;
  let acked = 0;
  await new Promise<void>((resolve) => {
    const fill = (): void => {
      let batch = 0;
      while (sent < MESSAGES && sent - acked < WINDOW) {
        sent++;
        batch++;
      }
      if (batch > 0) pub.write(Buffer.concat(Array.from({ length: batch }, () => peer.publishFrame)));
    };
    pub.on('data', (chunk: Buffer) => {
      acked += count(chunk);
      if (acked >= MESSAGES) resolve();
      else fill();
    });
    fill();
  });
  await allDelivered;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  for (const s of [...subs, pub]) s.destroy();
  return (MESSAGES * SUBSCRIBERS) / seconds;
}

function protokvPeer(port: number): Peer {
  const payload = 'x'.repeat(SIZE);
  const message = encodeFrame(encodeResponse(okValues([toValue(payload)])));
  const reply = encodeFrame(encodeResponse(okValues([toValue(1n)])));
  const publishReply = encodeFrame(encodeResponse(okValues([]))).length;
  return {
    name: 'protokv',
    port,
    messageBytes: message.length,
    // The id's varint grows with the id; a small bench never passes 2^14 subscriptions.
    subscribeReplyBytes: reply.length,
    subscribeFrame: encodeFrame(encodeRequest(requests.subscribe(TOPIC))),
    publishFrame: encodeFrame(encodeRequest(requests.publish(TOPIC, payload))),
    replyCounter: () => {
      let bytes = 0;
      return (chunk) => {
        bytes += chunk.length;
        const n = Math.floor(bytes / publishReply);
        bytes -= n * publishReply;
        return n;
      };
    },
  };
}

function redisPeer(port: number): Peer {
  const payload = 'x'.repeat(SIZE);
  const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  return {
    name: 'redis',
    port,
    messageBytes: Buffer.byteLength(`*3\r\n${bulk('message')}${bulk(TOPIC)}${bulk(payload)}`),
    subscribeReplyBytes: Buffer.byteLength(`*3\r\n${bulk('subscribe')}${bulk(TOPIC)}:1\r\n`),
    subscribeFrame: Buffer.from(`*2\r\n${bulk('SUBSCRIBE')}${bulk(TOPIC)}`),
    publishFrame: Buffer.from(`*3\r\n${bulk('PUBLISH')}${bulk(TOPIC)}${bulk(payload)}`),
    // Each reply is an integer line ":N\r\n".
    replyCounter: () => (chunk) => {
      let n = 0;
      for (const byte of chunk) if (byte === 0x0a) n++;
      return n;
    },
  };
}

async function startProtokv(): Promise<number> {
  const child = spawn(process.execPath, [BIN, 'serve', '--memory', '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  for await (const line of createInterface({ input: child.stdout })) {
    const address = (JSON.parse(line) as { msg?: string; address?: string }).address;
    if (address !== undefined) return Number(address.slice(address.lastIndexOf(':') + 1));
  }
  throw new Error('protokv exited before listening');
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  s.close();
  return port;
}

async function startRedis(): Promise<number | undefined> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined;
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(child);
  for (let i = 0; i < 100; i++) {
    try {
      (await connectTo(port)).destroy();
      return port;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('redis-server did not start');
}

const protokvPort = await startProtokv();
const redisPort = await startRedis();
if (redisPort === undefined) console.error('redis-server not found; measuring protokv only (apt-get install redis-server)');
const results: Record<string, number[]> = { protokv: [], redis: [] };
// Interleaved rounds, so both see the same machine conditions.
for (let round = 0; round < 3; round++) {
  results.protokv.push(await run(protokvPeer(protokvPort)));
  if (redisPort !== undefined) results.redis.push(await run(redisPeer(redisPort)));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\n1 publisher → ${SUBSCRIBERS} subscribers, ${MESSAGES} messages of ${SIZE} bytes, publisher window ${WINDOW} (median of 3)\n`);
console.log('| server | messages delivered/s |');
console.log('|---|---|');
for (const [name, xs] of Object.entries(results)) {
  if (xs.length > 0) console.log(`| ${name} | ${Math.round(median(xs)).toLocaleString('en-US')} |`);
}
if (results.redis.length > 0) console.log(`\nprotokv / redis: ${(median(results.protokv) / median(results.redis)).toFixed(2)}`);
process.exit(0);
