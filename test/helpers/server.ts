/** Starts real protokv servers on loopback ports the OS picks, and raw sockets to poke them. */
import net from 'node:net';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { MemoryStore } from '../../src/storage/memory.js';
import type { Store } from '../../src/storage/store.js';
import { Service } from '../../src/service/service.js';
import { ProtokvServer, type ServerOptions } from '../../src/transport/server.js';
import { connect, type ConnectOptions, type KvClient } from '../../src/client/client.js';
import { FrameDecoder, encodeFrame } from '../../src/codec/frame.js';
import { decodeResponse, encodeRequest } from '../../src/protocol/wire.js';
import type { CommandRequest, CommandResponse } from '../../src/protocol/generated/abi.js';

export interface Running {
  server: ProtokvServer;
  service: Service;
  port: number;
  /** Client options that reach this server. */
  clientOptions: ConnectOptions;
  client(extra?: Partial<ConnectOptions>): Promise<KvClient>;
  close(): Promise<void>;
}

export async function startServer(
  options: Partial<ServerOptions> & { store?: Store } = {},
  clientOptions: Partial<ConnectOptions> = {},
): Promise<Running> {
  const service = options.service ?? new Service({ store: options.store ?? new MemoryStore() });
  const server = await ProtokvServer.listen({ ...options, service, host: '127.0.0.1', port: 0 });
  const port = server.address().port;
  const base: ConnectOptions = { host: '127.0.0.1', port, ...clientOptions };
  return {
    server,
    service,
    port,
    clientOptions: base,
    client: (extra = {}) => connect({ ...base, ...extra }),
    close: () => server.close(),
  };
}

/**
 * A bare stream speaking frames by hand, for inputs no well-behaved client sends: a TCP socket
 * (`connect`), or any stream (`over`: a TLS socket, a yamux stream).
 */
export class RawPeer<S extends Duplex = net.Socket> {
  readonly socket: S;
  readonly #decoder: FrameDecoder;
  readonly #responses: CommandResponse[] = [];
  #waiters: (() => void)[] = [];
  ended = false;

  private constructor(socket: S, maxFrameSize?: number) {
    this.#decoder = new FrameDecoder(maxFrameSize);
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#decoder.push(chunk);
      for (let p = this.#decoder.next(); p !== undefined; p = this.#decoder.next()) this.#responses.push(decodeResponse(p));
      this.#wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.#wake();
    });
  }

  static async connect(port: number): Promise<RawPeer> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new RawPeer(socket);
  }

  /** Speaks frames on `stream`; responses up to `maxFrameSize` are read (default 64 MiB). */
  static over<S extends Duplex>(stream: S, maxFrameSize?: number): RawPeer<S> {
    return new RawPeer(stream, maxFrameSize);
  }

  /** Responses received and not yet taken by `responses`. */
  get received(): number {
    return this.#responses.length;
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  send(request: CommandRequest): void {
    this.write(encodeFrame(encodeRequest(request)));
  }

  /** Waits for `n` responses (fails if the connection closes first). */
  async responses(n: number): Promise<CommandResponse[]> {
    while (this.#responses.length < n) {
      if (this.ended) throw new Error(`connection closed after ${this.#responses.length} of ${n} responses`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return this.#responses.splice(0, n);
  }

  /** Resolves once the server has closed the connection. */
  async closed(): Promise<void> {
    while (!this.ended) await new Promise<void>((resolve) => this.#waiters.push(resolve));
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

/** A frame header for `len` bytes, optionally flagged as gzip. */
export function frameHeader(len: number, gzip = false): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(((gzip ? 0x8000_0000 : 0) | len) >>> 0);
  return b;
}
