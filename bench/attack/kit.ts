/**
 * What the hostile-client run needs: a protokv server in a child process (any checkout's
 * `bin/protokv.js`), its memory read from /proc, a probe client in a process of its own, and raw
 * connections that write frames by hand and tally the frames that come back without holding
 * large ones.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import type { Duplex } from 'node:stream';
import { encodeFrame } from '../../src/codec/frame.js';
import type { CommandRequest } from '../../src/protocol/generated/abi.js';
import { decodeResponse, encodeRequest } from '../../src/protocol/wire.js';
import { YamuxSession } from '../../src/transport/yamux.js';
import { generateCertificates } from '../../src/tls/certificates.js';
import type { ConnectOptions } from '../../src/client/client.js';

export type Transport = 'tcp' | 'tls' | 'yamux';
export type StoreKind = 'memory' | 'lmdb';

export const MiB = 1024 * 1024;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A frame carrying `request`, as a well-behaved client would send it. */
export function frameOf(request: CommandRequest): Buffer {
  return encodeFrame(encodeRequest(request));
}

/** A bare frame header: `length` payload bytes, optionally flagged gzip. */
export function frameHeader(length: number, gzip = false): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(((gzip ? 0x8000_0000 : 0) | length) >>> 0, 0);
  return b;
}

/** Certificate files for a TLS server, written once per run. */
export interface TlsFiles {
  dir: string;
  cert: string;
  key: string;
  ca: string;
}

export async function makeTlsFiles(): Promise<TlsFiles> {
  const dir = await mkdtemp(path.join(tmpdir(), 'protokv-attack-tls-'));
  const pems = await generateCertificates();
  const at = (n: string) => path.join(dir, n);
  await writeFile(at('server.pem'), pems.serverCert);
  await writeFile(at('server-key.pem'), pems.serverKey, { mode: 0o600 });
  await writeFile(at('ca.pem'), pems.caCert);
  return { dir, cert: at('server.pem'), key: at('server-key.pem'), ca: at('ca.pem') };
}

export interface ServerSpec {
  /** `bin/protokv.js` of the checkout under test. */
  bin: string;
  store: StoreKind;
  transport: Transport;
  tls: TlsFiles;
  extraArgs: readonly string[];
}

/** A `protokv serve` child process: its port, its log lines counted by message, its memory. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  port = 0;
  /** Log lines seen, by message. */
  readonly logCounts = new Map<string, number>();
  logLines = 0;
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Set when this run killed the server for going over the memory cap. */
  killedAtCap = false;
  readonly exited: Promise<void>;
  readonly #dataDir: string | undefined;
  #stderr = '';

  private constructor(child: ChildProcess, dataDir: string | undefined) {
    this.child = child;
    this.pid = child.pid ?? 0;
    this.#dataDir = dataDir;
    child.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-8192);
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve();
      }),
    );
  }

  static async start(spec: ServerSpec): Promise<ServerProcess> {
    const dataDir = spec.store === 'lmdb' ? await mkdtemp(path.join(tmpdir(), 'protokv-attack-data-')) : undefined;
    const args = [spec.bin, 'serve', '--listen', '127.0.0.1:0', '--log-level', 'info'];
    args.push(...(dataDir === undefined ? ['--memory'] : ['--data-dir', dataDir]));
    if (spec.transport === 'tls') args.push('--tls-cert', spec.tls.cert, '--tls-key', spec.tls.key);
    if (spec.transport === 'yamux') args.push('--mux', 'yamux');
    args.push(...spec.extraArgs);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new ServerProcess(child, dataDir);
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        server.logLines++;
        let entry: { msg?: unknown; address?: unknown };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return;
        }
        const msg = String(entry.msg);
        server.logCounts.set(msg, (server.logCounts.get(msg) ?? 0) + 1);
        if (msg === 'listening') {
          const address = String(entry.address);
          server.port = Number(address.slice(address.lastIndexOf(':') + 1));
          resolve();
        }
      });
      void server.exited.then(() => reject(new Error(`the server exited before listening: ${server.#stderr}`)));
    });
    return server;
  }

  /** Resident memory now, from /proc (undefined once the process is gone). */
  rss(): number | undefined {
    return procStatusBytes(this.pid, 'VmRSS');
  }

  /** Peak resident memory since start or the last `resetPeak`. */
  peak(): number | undefined {
    return procStatusBytes(this.pid, 'VmHWM');
  }

  /** Resets the kernel's peak-RSS mark, so `peak()` covers what follows only. */
  resetPeak(): boolean {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
      return true;
    } catch {
      return false;
    }
  }

  stderr(): string {
    return this.#stderr;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; removes its data directory. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exit === undefined) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    if (this.#dataDir !== undefined) await rm(this.#dataDir, { recursive: true, force: true });
  }
}

function procStatusBytes(pid: number, field: string): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples a server's RSS every few milliseconds; kills it if it goes over `capBytes`. */
export class RssMonitor {
  readonly baseline: number;
  max: number;
  readonly #timer: NodeJS.Timeout;

  constructor(server: ServerProcess, capBytes: number, everyMs = 20) {
    this.baseline = server.rss() ?? 0;
    this.max = this.baseline;
    server.resetPeak();
    this.#timer = setInterval(() => {
      const rss = server.rss();
      if (rss === undefined) return;
      if (rss > this.max) this.max = rss;
      if (rss > capBytes && !server.killedAtCap) {
        server.killedAtCap = true;
        server.child.kill('SIGKILL');
      }
    }, everyMs);
  }

  /** Peak growth over the baseline, from the samples and the kernel's own peak mark. */
  stop(server: ServerProcess): number {
    clearInterval(this.#timer);
    const hwm = server.peak() ?? 0;
    return Math.max(this.max, hwm) - this.baseline;
  }
}

/** Client options reaching a server over `transport`. */
export function connectOptionsFor(port: number, transport: Transport, tlsFiles: TlsFiles): ConnectOptions {
  return {
    host: '127.0.0.1',
    port,
    ...(transport === 'tls' ? { tls: { ca: readFileSync(tlsFiles.ca, 'utf8') } } : {}),
    ...(transport === 'yamux' ? { mux: 'yamux' as const } : {}),
  };
}

/** Opens one TCP or TLS connection (no yamux). */
export async function openSocket(port: number, useTls: boolean, tlsFiles: TlsFiles): Promise<net.Socket> {
  if (useTls) {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(tlsFiles.ca), servername: 'localhost' });
    socket.on('error', () => {});
    await once(socket, 'secureConnect');
    return socket;
  }
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.setNoDelay(true);
  return socket;
}

/** A client-side yamux session over a fresh TCP connection. */
export async function openYamux(port: number, tlsFiles: TlsFiles): Promise<YamuxSession> {
  const socket = await openSocket(port, false, tlsFiles);
  const session = new YamuxSession(socket, 'client', { keepAliveMs: false });
  session.on('error', () => {});
  return session;
}

/** What came back on a raw stream: each frame's size and, for small ones, its status. */
export interface SeenFrame {
  bytes: number;
  gzip: boolean;
  status?: number;
  message?: string;
}

/** Frames at most this large are decoded for their status; larger ones are only counted. */
const DECODE_LIMIT = 4 * MiB;

/**
 * A stream written by hand. Incoming frames are tallied as they arrive: small ones decoded for
 * their status, large ones skipped byte by byte, so reading a huge response costs this process
 * nothing. With `read: false` nothing is read at all (a client that never reads).
 */
export class RawStream {
  readonly stream: Duplex;
  readonly frames: SeenFrame[] = [];
  bytesReceived = 0;
  ended = false;
  #header = Buffer.alloc(4);
  #headerFill = 0;
  #left = -1;
  #gzip = false;
  #length = 0;
  #payload: Buffer[] = [];
  #waiters: (() => void)[] = [];

  constructor(stream: Duplex, options: { read?: boolean } = {}) {
    this.stream = stream;
    stream.on('error', () => {});
    stream.on('close', () => {
      this.ended = true;
      this.#wake();
    });
    if (options.read === false) stream.pause();
    else stream.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  send(request: CommandRequest): boolean {
    return this.stream.write(frameOf(request));
  }

  write(bytes: Buffer): boolean {
    return this.stream.write(bytes);
  }

  /** Waits until `n` frames have arrived, the stream closes or `ms` pass; returns whether `n` arrived. */
  async waitFrames(n: number, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (this.frames.length < n && !this.ended && Date.now() < end) {
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), sleep(Math.min(250, end - Date.now()))]);
    }
    return this.frames.length >= n;
  }

  destroy(): void {
    this.stream.destroy();
  }

  #onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      if (this.#left < 0) {
        const n = Math.min(4 - this.#headerFill, chunk.length - at);
        chunk.copy(this.#header, this.#headerFill, at, at + n);
        this.#headerFill += n;
        at += n;
        if (this.#headerFill < 4) return;
        this.#headerFill = 0;
        const h = this.#header.readUInt32BE(0);
        this.#gzip = (h & 0x8000_0000) !== 0;
        this.#length = h & 0x7fff_ffff;
        this.#left = this.#length;
        this.#payload = [];
      }
      const n = Math.min(this.#left, chunk.length - at);
      if (this.#length <= DECODE_LIMIT && n > 0) this.#payload.push(chunk.subarray(at, at + n));
      this.#left -= n;
      at += n;
      if (this.#left === 0) this.#frameDone();
    }
  }

  #frameDone(): void {
    const seen: SeenFrame = { bytes: this.#length, gzip: this.#gzip };
    if (this.#length <= DECODE_LIMIT) {
      try {
        const payload = Buffer.concat(this.#payload);
        const response = decodeResponse(this.#gzip ? gunzipSync(payload, { maxOutputLength: 8 * DECODE_LIMIT }) : payload);
        seen.status = response.status;
        seen.message = response.message;
      } catch {
        // Too large once inflated, or unreadable: counted by size only.
      }
    }
    this.#payload = [];
    this.#left = -1;
    this.frames.push(seen);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/** The probe's findings: how long its requests took while the attack ran. */
export interface ProbeResult {
  samples: number;
  maxMs: number;
  p99Ms: number;
  /** Requests that failed (connection lost, error status). */
  failures: number;
}

/**
 * A client in a process of its own sending one `HGET` every 50 ms and timing each answer, so a
 * stalled server shows as latency however busy the attacking process is.
 */
export class Probe {
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  static async start(script: string, options: ConnectOptions): Promise<Probe> {
    const child = fork(script, ['probe'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const probe = new Probe(child);
    child.send({ type: 'start', options });
    await new Promise<void>((resolve, reject) => {
      child.once('message', (m: { type: string; error?: string }) =>
        m.type === 'ready' ? resolve() : reject(new Error(`probe failed to start: ${m.error}`)),
      );
      child.once('exit', () => reject(new Error('probe exited before it was ready')));
    });
    return probe;
  }

  /** Forgets what was measured so far: the attack starts now. */
  reset(): void {
    this.#child.send({ type: 'reset' });
  }

  async stop(): Promise<ProbeResult> {
    const result = new Promise<ProbeResult>((resolve) =>
      this.#child.once('message', (m: { type: string; result: ProbeResult }) => resolve(m.result)),
    );
    this.#child.send({ type: 'stop' });
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    const r = await Promise.race([result, once(this.#child, 'exit').then(() => ({ samples: 0, maxMs: NaN, p99Ms: NaN, failures: -1 }))]);
    clearTimeout(timer);
    return r;
  }
}
