/**
 * The scenarios of the hostile-client run, one per finding of the review. Each is bounded in
 * size and time so that even a server without the defences cannot take the machine down: the
 * runner also kills the server if its memory passes a cap.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { connect, type ConnectOptions, type KvClient } from '../../src/client/client.js';
import { requests } from '../../src/protocol/requests.js';
import { encodeHeader, Flag, FrameParser, FrameType, type FrameHeader } from '../../src/transport/yamux/frame.js';
import type { YamuxSession } from '../../src/transport/yamux.js';
import { frameHeader, frameOf, MiB, openSocket, openYamux, RawStream, sleep, type ServerProcess, type TlsFiles, type Transport } from './kit.js';

/** What a scenario works with. */
export interface AttackContext {
  server: ServerProcess;
  transport: Transport;
  tlsFiles: TlsFiles;
  connectOptions: ConnectOptions;
  /** Sizes scaled by the command line. */
  scale: Scale;
  /** A raw stream: a connection, or a new yamux session's stream on a yamux server. */
  raw(options?: { read?: boolean }): Promise<RawStream>;
  /** A well-behaved client. */
  client(): Promise<KvClient>;
  /** Registers clean-up to run after the scenario, whatever happens. */
  defer(fn: () => unknown): void;
}

export interface Scale {
  bigValue: number;
  wideFields: number;
  fanout: number;
  dripSeconds: number;
}

export interface Scenario {
  name: string;
  /** The review's finding it reproduces. */
  finding: string;
  what: string;
  /** Transports it runs over unless the command line says otherwise; the first is the default. */
  transports: Transport[];
  serverArgs?: string[];
  /** Whether the probe's own connection matters to the scenario (it always runs). */
  setup?(ctx: AttackContext): Promise<void>;
  /** Runs the attack; resolves to a one-line outcome. */
  attack(ctx: AttackContext): Promise<string>;
}

const TABLE = 'attack';

/** Stores one large incompressible value under `TABLE/big`. */
async function storeBigValue(ctx: AttackContext): Promise<void> {
  const kv = await ctx.client();
  await kv.hset(TABLE, 'big', randomBytes(ctx.scale.bigValue));
  await kv.close();
}

function describeFrames(raw: RawStream, expected: number): string {
  if (raw.frames.length === 0) return raw.ended ? 'connection closed, no answer' : 'no answer in time';
  const f = raw.frames[0];
  const status = f.status === undefined ? 'status unread' : `${f.status}${f.message ? ` ${JSON.stringify(f.message.slice(0, 70))}` : ''}`;
  const more = raw.frames.length > 1 ? `, ${raw.frames.length}/${expected} frames` : '';
  return `answer ${(f.bytes / MiB).toFixed(1)} MiB frame, ${status}${more}`;
}

/** Sends one request on a raw stream and reports what came back (and whether the stream still answers). */
async function oneRequest(ctx: AttackContext, build: () => Parameters<RawStream['send']>[0], waitMs: number): Promise<string> {
  const raw = await ctx.raw();
  ctx.defer(() => raw.destroy());
  raw.send(build());
  await raw.waitFrames(1, waitMs);
  let outcome = describeFrames(raw, 1);
  if (raw.frames.length === 1 && !raw.ended) {
    raw.send(requests.hexist(TABLE, 'big'));
    const usable = await raw.waitFrames(2, 30_000);
    outcome += usable && raw.frames[1].status === 200 ? '; stream still usable' : '; stream not usable';
  }
  return outcome;
}

/** Opens `count` raw streams: connections, or streams of one yamux session. */
async function rawStreams(ctx: AttackContext, count: number, options: { read?: boolean } = {}): Promise<RawStream[]> {
  if (ctx.transport !== 'yamux') return Promise.all(Array.from({ length: count }, () => ctx.raw(options)));
  const session = await openYamux(ctx.server.port, ctx.tlsFiles);
  ctx.defer(() => session.destroy());
  return Array.from({ length: count }, () => new RawStream(session.open(), options));
}

/** Writes `bytes` in pieces, waiting for drains; gives up when a drain takes longer than `stallMs`. Returns bytes written. */
async function writeWithin(raw: RawStream, bytes: number, stallMs: number): Promise<number> {
  const piece = Buffer.alloc(MiB, 0x41);
  let written = 0;
  while (written < bytes && !raw.ended) {
    const n = Math.min(piece.length, bytes - written);
    const ok = raw.write(n === piece.length ? piece : piece.subarray(0, n));
    written += n;
    if (!ok) {
      const drained = await Promise.race([
        new Promise<boolean>((r) => raw.stream.once('drain', () => r(true))),
        sleep(stallMs).then(() => false),
      ]);
      if (!drained) break;
    }
  }
  return written;
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'hmget-x70',
    finding: '2',
    what: 'HMGET naming one big binary value 70 times (a 4.2 GB answer at 60 MiB)',
    transports: ['tcp', 'tls', 'yamux'],
    setup: storeBigValue,
    attack: (ctx) => oneRequest(ctx, () => requests.hmget(TABLE, Array<string>(70).fill('big')), 90_000),
  },
  {
    name: 'hmget-x10',
    finding: '3',
    what: 'HMGET naming one big binary value 10 times (600 MiB answer at 60 MiB)',
    transports: ['tcp', 'tls', 'yamux'],
    setup: storeBigValue,
    attack: (ctx) => oneRequest(ctx, () => requests.hmget(TABLE, Array<string>(10).fill('big')), 90_000),
  },
  {
    name: 'hgetall-wide',
    finding: '3',
    what: 'HGETALL of a table of 1M fields (65.8 MiB encoded)',
    transports: ['tcp', 'tls', 'yamux'],
    async setup(ctx) {
      const kv = await ctx.client();
      const value = 'v'.repeat(53);
      const batch = 10_000;
      const pending: Promise<unknown>[] = [];
      for (let start = 0; start < ctx.scale.wideFields; start += batch) {
        const pairs: [string, string][] = [];
        for (let i = start; i < Math.min(start + batch, ctx.scale.wideFields); i++) pairs.push([`f${String(i).padStart(7, '0')}`, value]);
        pending.push(kv.hmset('wide', pairs));
        if (pending.length >= 8) await Promise.all(pending.splice(0));
      }
      await Promise.all(pending);
      await kv.close();
    },
    attack: (ctx) => oneRequest(ctx, () => requests.hgetall('wide'), 90_000),
  },
  {
    name: 'hget-flood-noread',
    finding: '3',
    what: '6 MB of pipelined HGETs of a 64 KiB value from a client that never reads, held 15 s',
    transports: ['tcp', 'yamux', 'tls'],
    async setup(ctx) {
      const kv = await ctx.client();
      await kv.hset(TABLE, 'v64k', randomBytes(64 * 1024));
      await kv.close();
    },
    async attack(ctx) {
      const raw = await ctx.raw({ read: false });
      ctx.defer(() => raw.destroy());
      const one = frameOf(requests.hget(TABLE, 'v64k'));
      const count = Math.floor((6 * 1000 * 1000) / one.length);
      raw.write(Buffer.concat(Array<Buffer>(count).fill(one)));
      await sleep(15_000);
      return `${count} HGETs sent, none read; connection ${raw.ended ? 'closed by the server' : 'still open'}`;
    },
  },
  {
    name: 'slow-subscribers',
    finding: '4',
    what: '50 subscribers that never read, 12,000 publishes of 4 KB',
    transports: ['tcp', 'tls', 'yamux'],
    async attack(ctx) {
      const subscribers = await rawStreams(ctx, 50);
      ctx.defer(() => subscribers.forEach((s) => s.destroy()));
      for (const s of subscribers) s.send(requests.subscribe('slow'));
      await Promise.all(subscribers.map((s) => s.waitFrames(1, 10_000)));
      for (const s of subscribers) s.stream.pause();
      const kv = await ctx.client();
      ctx.defer(() => kv.close());
      const message = randomBytes(4000);
      const end = Date.now() + 60_000;
      let sent = 0;
      while (sent < 12_000 && Date.now() < end) {
        await Promise.all(Array.from({ length: 100 }, () => kv.publish('slow', message)));
        sent += 100;
      }
      await sleep(2000);
      const dropped = ctx.server.logCounts.get('subscriber backlog limit reached; disconnecting the subscriber') ?? 0;
      return `${sent} published; ${dropped}/50 subscribers dropped by the server (its log)`;
    },
  },
  {
    name: 'half-frames',
    finding: '5',
    what: '20 streams each sending the header of a 60 MiB frame and 16 bytes, held 10 s',
    transports: ['tcp', 'yamux', 'tls'],
    async attack(ctx) {
      const streams = await rawStreams(ctx, 20);
      ctx.defer(() => streams.forEach((s) => s.destroy()));
      for (const s of streams) s.write(Buffer.concat([frameHeader(60 * MiB), Buffer.alloc(16, 1)]));
      await sleep(10_000);
      return `${streams.filter((s) => s.ended).length}/20 streams closed by the server`;
    },
  },
  {
    name: 'half-frames-filled',
    finding: '5',
    what: '20 streams each sending the header of a 60 MiB frame and then 20 MiB of it, held 10 s',
    transports: ['tcp', 'yamux', 'tls'],
    async attack(ctx) {
      const streams = await rawStreams(ctx, 20);
      ctx.defer(() => streams.forEach((s) => s.destroy()));
      const written = await Promise.all(
        streams.map(async (s) => {
          s.write(frameHeader(60 * MiB));
          return writeWithin(s, 20 * MiB, 3000);
        }),
      );
      await sleep(10_000);
      const total = written.reduce((a, b) => a + b, 0);
      return `${(total / MiB).toFixed(0)} MiB written by the clients before the server stopped reading`;
    },
  },
  {
    name: 'inflate-63mib',
    finding: '6',
    what: '20 pipelined ~64 KiB gzip frames that inflate to 63 MiB each',
    transports: ['tcp', 'tls', 'yamux'],
    async attack(ctx) {
      const raw = await ctx.raw();
      ctx.defer(() => raw.destroy());
      const compressed = gzipSync(Buffer.alloc(63 * MiB));
      const frame = Buffer.concat([frameHeader(compressed.length, true), compressed]);
      for (let i = 0; i < 20; i++) raw.write(frame);
      await raw.waitFrames(20, 90_000);
      const statuses = new Set(raw.frames.map((f) => f.status));
      return `${(compressed.length / 1024).toFixed(0)} KiB frames; ${raw.frames.length}/20 answered (status ${[...statuses].join(',')})`;
    },
  },
  {
    name: 'hget-big',
    finding: '6',
    what: 'one HGET of the big binary value (compression of the answer)',
    transports: ['tcp', 'tls', 'yamux'],
    setup: storeBigValue,
    attack: (ctx) => oneRequest(ctx, () => requests.hget(TABLE, 'big'), 90_000),
  },
  {
    name: 'publish-fanout',
    finding: '6',
    what: 'PUBLISH to 100,000 subscribers (yamux: 1,000 streams per connection), 5 messages',
    transports: ['yamux'],
    async setup(ctx) {
      const perSession = 1000;
      let subscribed = 0;
      const sessions: YamuxSession[] = [];
      ctx.defer(() => sessions.forEach((s) => s.destroy()));
      for (let opened = 0; opened < ctx.scale.fanout; opened += perSession) {
        const session = await openYamux(ctx.server.port, ctx.tlsFiles);
        sessions.push(session);
        const frame = frameOf(requests.subscribe('fanout'));
        for (let i = 0; i < Math.min(perSession, ctx.scale.fanout - opened); i++) {
          const stream = session.open();
          stream.on('error', () => {});
          let first = true;
          stream.on('data', () => {
            if (first) subscribed++;
            first = false;
          });
          stream.write(frame);
        }
        // Let each session's subscriptions land before opening the next (keeps setup memory flat).
        const target = Math.min(opened + perSession, ctx.scale.fanout);
        const end = Date.now() + 30_000;
        while (subscribed < target && Date.now() < end) await sleep(20);
      }
      if (subscribed < ctx.scale.fanout) throw new Error(`only ${subscribed} of ${ctx.scale.fanout} subscriptions confirmed`);
    },
    async attack(ctx) {
      const kv = await ctx.client();
      ctx.defer(() => kv.close());
      for (let i = 0; i < 5; i++) {
        await kv.publish('fanout', `message ${i}`);
        await sleep(200);
      }
      await sleep(3000);
      return `${ctx.scale.fanout} subscribers, 5 messages published`;
    },
  },
  {
    name: 'slow-drip',
    finding: '7',
    what: '600 connections dripping one byte a second against --max-connections 500',
    transports: ['tcp', 'tls', 'yamux'],
    serverArgs: ['--max-connections', '500'],
    async attack(ctx) {
      const frame = frameOf(requests.hexist(TABLE, 'drip'));
      const sockets: net.Socket[] = [];
      const closed = { byServer: 0 };
      ctx.defer(() => sockets.forEach((s) => s.destroy()));
      for (let i = 0; i < 600; i++) {
        const s = await openSocket(ctx.server.port, ctx.transport === 'tls', ctx.tlsFiles).catch(() => undefined);
        if (s === undefined) continue;
        s.on('data', () => {});
        s.once('close', () => closed.byServer++);
        sockets.push(s);
        // A yamux connection opens a stream first, as a client would; then the frame drips on it.
        if (ctx.transport === 'yamux') s.write(encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0));
      }
      const dripped = new Map<net.Socket, number>();
      const timer = setInterval(() => {
        for (const s of sockets) {
          if (s.destroyed) continue;
          const at = dripped.get(s) ?? 0;
          const byte = frame.subarray(at % frame.length, (at % frame.length) + 1);
          s.write(ctx.transport === 'yamux' ? Buffer.concat([encodeHeader(FrameType.Data, 0, 1, 1), byte]) : byte);
          dripped.set(s, at + 1);
        }
      }, 1000);
      ctx.defer(() => clearInterval(timer));
      await sleep(ctx.scale.dripSeconds * 1000);
      clearInterval(timer);
      let newClient: string;
      try {
        const kv = await connect({ ...ctx.connectOptions, connectTimeoutMs: 5000 });
        try {
          const answer = await Promise.race([kv.hexist(TABLE, 'x').then(() => 'served'), sleep(5000).then(() => 'no answer')]);
          newClient = answer;
        } catch (err) {
          newClient = `refused (${(err as Error).message.slice(0, 60)})`;
        } finally {
          kv.close().catch(() => {});
        }
      } catch (err) {
        newClient = `cannot connect (${(err as Error).message.slice(0, 60)})`;
      }
      return `after ${ctx.scale.dripSeconds} s: ${closed.byServer}/${sockets.length} dripping connections closed; a new client is ${newClient}`;
    },
  },
  {
    name: 'tls-handshake-flood',
    finding: '10',
    what: '15 s of garbage TLS handshakes, 20 at a time: log lines written',
    transports: ['tls'],
    async attack(ctx) {
      const before = ctx.server.logLines;
      const end = Date.now() + 15_000;
      let attempts = 0;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (Date.now() < end) {
            attempts++;
            const s = net.connect({ host: '127.0.0.1', port: ctx.server.port });
            s.on('error', () => {});
            s.on('data', () => {});
            s.write('GET / HTTP/1.0\r\n\r\n');
            await new Promise<void>((r) => {
              s.once('close', () => r());
              setTimeout(() => {
                s.destroy();
                r();
              }, 1000);
            });
          }
        }),
      );
      await sleep(1500);
      return `${attempts} refused handshakes, ${ctx.server.logLines - before} log lines`;
    },
  },
  {
    name: 'yamux-refusal',
    finding: '10',
    what: 'a yamux client over --max-connections 1 (the probe holds the one slot)',
    transports: ['yamux'],
    serverArgs: ['--max-connections', '1'],
    async attack(ctx) {
      const socket = await openSocket(ctx.server.port, false, ctx.tlsFiles);
      ctx.defer(() => socket.destroy());
      const received: Buffer[] = [];
      socket.on('data', (d: Buffer) => received.push(d));
      socket.write(Buffer.concat([encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0)]));
      await Promise.race([new Promise((r) => socket.once('close', r)), sleep(3000)]);
      const bytes = Buffer.concat(received);
      const frames = parseYamux(bytes);
      const kind = frames.ok ? `yamux frames (${frames.summary})` : `not yamux: first bytes ${bytes.subarray(0, 12).toString('hex')}`;
      let client: string;
      try {
        const kv = await connect({ ...ctx.connectOptions, connectTimeoutMs: 5000 });
        try {
          await Promise.race([kv.hexist(TABLE, 'x'), sleep(5000).then(() => Promise.reject(new Error('no answer')))]);
          client = 'served (unexpected)';
        } catch (err) {
          client = `client error: ${(err as Error).message.slice(0, 80)}`;
        }
        kv.close().catch(() => {});
      } catch (err) {
        client = `client cannot connect: ${(err as Error).message.slice(0, 80)}`;
      }
      return `${kind}; ${client}`;
    },
  },
  {
    name: 'yamux-stream-reuse',
    finding: '10',
    what: 'reopening a finished stream id, and opening a stream after our own go-away',
    transports: ['yamux'],
    async attack(ctx) {
      const reuse = await yamuxProbe(ctx, async (peer) => {
        peer.request(1, true);
        await peer.waitFor((f) => f.streamId === 1 && f.type === FrameType.Data);
        peer.send(FrameType.WindowUpdate, Flag.FIN, 1, 0);
        await peer.waitFor((f) => f.streamId === 1 && (f.flags & Flag.FIN) !== 0);
        peer.reset();
        peer.request(1, true);
      });
      const afterGoAway = await yamuxProbe(ctx, async (peer) => {
        peer.send(FrameType.GoAway, 0, 0, 0);
        await sleep(100);
        peer.request(1, true);
      });
      return `reused id: ${reuse}; stream after own go-away: ${afterGoAway}`;
    },
  },
];

interface SeenYamux extends FrameHeader {
  payload?: number;
}

/** Whether `bytes` read as yamux frames, and which. */
function parseYamux(bytes: Buffer): { ok: boolean; summary: string } {
  const seen: string[] = [];
  let ok = bytes.length >= 12;
  const parser = new FrameParser({
    onHeader(h) {
      if (h.version !== 0 || h.type > 3 || (h.flags & ~0xf) !== 0) ok = false;
      seen.push(h.type === FrameType.GoAway ? `go-away ${h.length}` : `type ${h.type} flags ${h.flags} stream ${h.streamId}`);
    },
    onPayload() {},
    onFrameEnd() {},
  });
  parser.push(bytes);
  return { ok, summary: seen.slice(0, 4).join(', ') };
}

interface YamuxPeer {
  send(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void;
  /** Opens (with SYN) stream `id` and sends a request on it. */
  request(id: number, syn: boolean): void;
  waitFor(match: (f: SeenYamux) => boolean, ms?: number): Promise<boolean>;
  /** Forgets frames seen so far. */
  reset(): void;
}

/** Speaks yamux by hand on a fresh connection; reports how the server answered the last request. */
async function yamuxProbe(ctx: AttackContext, script: (peer: YamuxPeer) => Promise<void>): Promise<string> {
  const socket = await openSocket(ctx.server.port, false, ctx.tlsFiles);
  ctx.defer(() => socket.destroy());
  let frames: SeenYamux[] = [];
  const parser = new FrameParser({
    onHeader: (h) => frames.push({ ...h }),
    onPayload: () => {},
    onFrameEnd: () => {},
  });
  socket.on('data', (d: Buffer) => parser.push(d));
  const request = frameOf(requests.hexist(TABLE, 'x'));
  const peer: YamuxPeer = {
    send: (type, flags, id, length, payload) => socket.write(payload ? Buffer.concat([encodeHeader(type, flags, id, length), payload]) : encodeHeader(type, flags, id, length)),
    request(id, syn) {
      this.send(FrameType.Data, syn ? Flag.SYN : 0, id, request.length, request);
    },
    async waitFor(match, ms = 3000) {
      const end = Date.now() + ms;
      while (!frames.some(match) && Date.now() < end && !socket.destroyed) await sleep(10);
      return frames.some(match);
    },
    reset: () => (frames = []),
  };
  await script(peer);
  await peer.waitFor((f) => f.type === FrameType.GoAway || (f.flags & Flag.RST) !== 0 || f.type === FrameType.Data, 3000);
  const goAway = frames.find((f) => f.type === FrameType.GoAway);
  if (goAway) return `go-away (code ${goAway.length})`;
  if (frames.some((f) => (f.flags & Flag.RST) !== 0)) return 'stream refused (RST)';
  if (frames.some((f) => f.type === FrameType.Data)) return 'accepted and answered';
  return 'no answer';
}
