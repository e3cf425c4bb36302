/**
 * RESP test helpers: a protokv service with its RESP listener (and, when asked, its protobuf
 * listener) on OS-picked loopback ports, a redis-server the test starts and stops, and a raw RESP
 * connection that sends bytes and reads typed replies.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore } from '../../src/storage/memory.js';
import type { Store } from '../../src/storage/store.js';
import { Service } from '../../src/service/service.js';
import { ProtokvServer } from '../../src/transport/server.js';
import { RespServer, type RespServerOptions } from '../../src/resp/server.js';
import { connect, type KvClient } from '../../src/client/client.js';

export interface RespEnv {
  service: Service;
  resp: RespServer;
  port: number;
  /** The protobuf listener, when started with `protobuf: true`. */
  main?: ProtokvServer;
  /** A protobuf client of the same service (needs `protobuf: true`). */
  kv(): Promise<KvClient>;
  close(): Promise<void>;
}

/** A service on `store` (memory by default) with a RESP listener, and a protobuf listener if asked. */
export async function startResp(options: { store?: Store; protobuf?: boolean; resp?: Partial<RespServerOptions>; maxKeysPerCommand?: number } = {}): Promise<RespEnv> {
  const service = new Service({ store: options.store ?? new MemoryStore(), maxKeysPerCommand: options.maxKeysPerCommand });
  const resp = await RespServer.listen({ service, host: '127.0.0.1', port: 0, ...options.resp });
  const main = options.protobuf === true ? await ProtokvServer.listen({ service, host: '127.0.0.1', port: 0 }) : undefined;
  return {
    service,
    resp,
    port: resp.address().port,
    main,
    kv: () => {
      if (main === undefined) throw new Error('started without the protobuf listener');
      return connect({ host: '127.0.0.1', port: main.address().port });
    },
    close: async () => {
      await resp.close();
      if (main !== undefined) await main.close();
      else await service.close();
    },
  };
}

/** Whether redis-server (and the Redis tools) are installed; the reason to skip when not. */
export function missingRedis(...tools: string[]): string | undefined {
  for (const tool of ['redis-server', ...tools]) {
    if (spawnSync(tool, ['--version']).status !== 0) return `needs ${tool} (apt-get install redis-server redis-tools)`;
  }
  return undefined;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface RedisProcess {
  port: number;
  stop(): Promise<void>;
}

/** Starts redis-server without persistence on a free loopback port. */
export async function startRedis(): Promise<RedisProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'protokv-redis-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child: ChildProcess = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
      { stdio: 'ignore' },
    );
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
      await rm(dir, { recursive: true, force: true });
    };
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) break;
      try {
        const c = await RawResp.connect(port);
        c.send('PING');
        const pong = await c.reply();
        c.destroy();
        if (pong.t === 'simple' && pong.v === 'PONG') return { port, stop };
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await stop();
    if (attempt >= 2) throw new Error('redis-server did not start');
  }
}

/** A RESP reply, with its exact type. */
export type Reply =
  | { t: 'simple'; v: string }
  | { t: 'error'; v: string }
  | { t: 'int'; v: bigint }
  | { t: 'bulk'; v: Buffer }
  | { t: 'verbatim'; v: string }
  | { t: 'double'; v: string }
  | { t: 'bool'; v: boolean }
  | { t: 'null' }
  | { t: 'nullarray' }
  | { t: 'array' | 'set' | 'push' | 'map'; v: Reply[] };

/** Parses one reply from `buf` at `pos`: the reply and the position after it, or undefined if incomplete. */
export function parseReply(buf: Buffer, pos: number): [Reply, number] | undefined {
  const nl = buf.indexOf('\r\n', pos);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('latin1', pos + 1, nl);
  const next = nl + 2;
  const aggregate = (t: 'array' | 'set' | 'push' | 'map', n: number): [Reply, number] | undefined => {
    const items: Reply[] = [];
    let at = next;
    for (let i = 0; i < n; i++) {
      const r = parseReply(buf, at);
      if (r === undefined) return undefined;
      items.push(r[0]);
      at = r[1];
    }
    return [{ t, v: items }, at];
  };
  switch (type) {
    case '+':
      return [{ t: 'simple', v: buf.toString('utf8', pos + 1, nl) }, next];
    case '-':
      return [{ t: 'error', v: buf.toString('utf8', pos + 1, nl) }, next];
    case ':':
      return [{ t: 'int', v: BigInt(line) }, next];
    case ',':
      return [{ t: 'double', v: line }, next];
    case '#':
      return [{ t: 'bool', v: line === 't' }, next];
    case '_':
      return [{ t: 'null' }, next];
    case '$':
    case '=': {
      const len = Number(line);
      if (len < 0) return [{ t: 'null' }, next];
      if (buf.length < next + len + 2) return undefined;
      const body = buf.subarray(next, next + len);
      return [type === '$' ? { t: 'bulk', v: Buffer.from(body) } : { t: 'verbatim', v: body.toString('utf8') }, next + len + 2];
    }
    case '*':
      return Number(line) < 0 ? [{ t: 'nullarray' }, next] : aggregate('array', Number(line));
    case '~':
      return aggregate('set', Number(line));
    case '>':
      return aggregate('push', Number(line));
    case '%':
      return aggregate('map', Number(line) * 2);
    default:
      throw new Error(`bad reply type ${JSON.stringify(type)} in ${JSON.stringify(buf.toString('latin1', pos, pos + 40))}`);
  }
}

/** A reply as plain values: strings for bulk and simple strings, bigint integers, Error for errors. */
export function plain(r: Reply): unknown {
  switch (r.t) {
    case 'simple':
    case 'verbatim':
    case 'double':
      return r.v;
    case 'bulk':
      return r.v.toString('utf8');
    case 'error':
      return new Error(r.v);
    case 'int':
      return r.v;
    case 'bool':
      return r.v;
    case 'null':
    case 'nullarray':
      return null;
    default:
      return r.v.map(plain);
  }
}

/** Encodes a command as a RESP multibulk request. */
export function encodeCommand(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** A raw RESP connection. */
export class RawResp {
  readonly socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #replies: Reply[] = [];
  #waiters: (() => void)[] = [];
  ended = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      let pos = 0;
      for (;;) {
        const r = parseReply(this.#buf, pos);
        if (r === undefined) break;
        this.#replies.push(r[0]);
        pos = r[1];
      }
      this.#buf = this.#buf.subarray(pos);
      this.#wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.#wake();
    });
  }

  static async connect(port: number): Promise<RawResp> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawResp(socket);
  }

  /** Sends one command. */
  send(...args: (string | Buffer)[]): void {
    this.socket.write(encodeCommand(args));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Sends a command and waits for its reply. */
  async call(...args: (string | Buffer)[]): Promise<Reply> {
    this.send(...args);
    return this.reply();
  }

  async reply(): Promise<Reply> {
    return (await this.replies(1))[0];
  }

  /** Waits for `n` replies (fails if the connection closes first). */
  async replies(n: number, timeoutMs = 30_000): Promise<Reply[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.#replies.length < n) {
      if (this.ended) throw new Error(`connection closed after ${this.#replies.length} of ${n} replies`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} replies (have ${this.#replies.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.#replies.splice(0, n);
  }

  /** Replies received and not yet taken. */
  get pending(): number {
    return this.#replies.length;
  }

  /** Bytes received that do not (yet) form a whole reply. */
  get partial(): Buffer {
    return this.#buf;
  }

  async closed(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('the connection did not close');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}
