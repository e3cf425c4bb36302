/**
 * protokv over WebSocket in tests: a real protokv server whose `/ws` endpoint is served by the
 * HTTP listener (HTTP, or HTTPS with mutual TLS) on a loopback port the OS picks, wired as
 * `protokv serve` wires it — optionally with the web console and `/metrics` — and clients that
 * reach it through real WebSocket connections: the browser client (`protokv/browser`) given the
 * `ws` package's WebSocket.
 */
import { once } from 'node:events';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { FrameDecoder, encodeFrame } from '../../src/codec/frame.js';
import type { CommandRequest, CommandResponse } from '../../src/protocol/generated/abi.js';
import { decodeResponse, encodeRequest } from '../../src/protocol/wire.js';
import { connect, type ConnectOptions as BrowserConnectOptions, type WebSocketConstructor } from '../../src/browser/index.js';
import type { KvClient } from '../../src/client/core/client.js';
import { HttpListener } from '../../src/http/listener.js';
import { addMetricsRoute } from '../../src/http/metrics-route.js';
import { mountConsole } from '../../src/console/site.js';
import { silentLogger } from '../../src/logger.js';
import { Figures, Instrumentation } from '../../src/observability/instrumentation.js';
import { createMetricsRegistry } from '../../src/observability/metrics.js';
import { Service } from '../../src/service/service.js';
import { MemoryStore } from '../../src/storage/memory.js';
import { WebSocketEndpoint, type WebSocketEndpointOptions } from '../../src/transport/websocket.js';
import { makeTlsFixture, type TlsFixtureFiles } from './certs.js';
import { startServer, type Running } from './server.js';

export interface WebSocketRunning extends Running {
  /** `ws://127.0.0.1:PORT/ws` or `wss://…`. */
  url: string;
  /** The HTTP listener's origin, as a page served by it would send in `Origin`. */
  origin: string;
  endpoint: WebSocketEndpoint;
  /** Options a `ws` client needs to reach the server (TLS material). */
  wsOptions: WebSocket.ClientOptions;
  /** The certificate files, with `mtls`. */
  tlsFiles?: TlsFixtureFiles;
  /** A client over the protokv port (TCP), next to the WebSocket ones `client()` makes. */
  tcpClient(): Promise<KvClient>;
}

export interface WebSocketServerOptions {
  /** Serve HTTPS and demand client certificates (mutual TLS). */
  mtls?: boolean;
  endpoint?: Partial<WebSocketEndpointOptions>;
  server?: Parameters<typeof startServer>[0];
  /** Also keep metrics and serve `/metrics` and the web console at `/`, as `protokv serve` does. */
  console?: boolean;
}

/** Starts a protokv server and an HTTP listener carrying its `/ws` endpoint. */
export async function startWebSocketServer(options: WebSocketServerOptions = {}): Promise<WebSocketRunning> {
  const instrumentation = options.console ? new Instrumentation({ figures: new Figures(), tracer: null }) : null;
  const serverOptions = { ...options.server };
  if (instrumentation !== null && serverOptions.service === undefined) {
    serverOptions.service = new Service({ store: serverOptions.store ?? new MemoryStore(), instrumentation, logger: silentLogger() });
  }
  const running = await startServer(serverOptions);
  const tls = options.mtls ? await makeTlsFixture() : undefined;
  const pems = tls?.pems;
  const listener = await HttpListener.listen({
    host: '127.0.0.1',
    port: 0,
    tls: pems === undefined ? undefined : { cert: pems.serverCert, key: pems.serverKey, clientCa: pems.caCert },
    logger: silentLogger(),
  });
  const port = listener.address().port;
  const endpoint = new WebSocketEndpoint({
    accept: (stream) => running.server.adopt(stream, { transport: 'websocket', port }),
    inputBudget: running.server.inputBudget,
    allowedOrigins: [],
    secure: listener.secure,
    loopback: true,
    instrumentation,
    ...options.endpoint,
  }).attach(listener);
  if (instrumentation?.figures) {
    mountConsole(listener, silentLogger());
    const { service } = running;
    addMetricsRoute(listener, createMetricsRegistry({ figures: instrumentation.figures, pubsub: service.pubsub, store: service.store }));
  }
  const scheme = pems === undefined ? 'ws' : 'wss';
  const url = `${scheme}://127.0.0.1:${port}/ws`;
  const wsOptions: WebSocket.ClientOptions = pems === undefined ? {} : { ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey };
  return {
    ...running,
    url,
    origin: `${pems === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    endpoint,
    wsOptions,
    tlsFiles: tls?.files,
    client: () => connectWebSocketClient(url, wsOptions),
    tcpClient: () => running.client(),
    close: async () => {
      endpoint.close();
      await running.close();
      await listener.close();
      await tls?.cleanup();
    },
  };
}

/** Opens a `ws` WebSocket and waits until it is open (rejects on a refused upgrade). */
export async function openWebSocket(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, options);
  await opened(ws);
  return ws;
}

/** Resolves once `ws` is open; rejects with the HTTP status and body of a refused upgrade. */
async function opened(ws: WebSocket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body}`), { statusCode: res.statusCode, body })));
    });
  });
}

/** The `ws` package's WebSocket with `options` (TLS material, headers) bound, for the browser client. */
export function webSocketClass(options: WebSocket.ClientOptions = {}): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, options);
    }
  };
}

/** The browser client (`protokv/browser`) over `ws`'s WebSocket. */
export function connectWebSocketClient(url: string, options: WebSocket.ClientOptions = {}, clientOptions: BrowserConnectOptions = {}): Promise<KvClient> {
  return connect({ ...clientOptions, url, WebSocket: webSocketClass(options) });
}

/** A bare WebSocket speaking frames by hand, for inputs no well-behaved client sends. */
export class RawWebSocketPeer {
  readonly ws: WebSocket;
  /** Every message received, as it arrived. */
  readonly messages: Buffer[] = [];
  #read = 0;
  #waiters: (() => void)[] = [];
  /** The close code and reason, once closed. */
  closeStatus: { code: number; reason: string } | undefined;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) => {
      this.messages.push(data);
      this.#wake();
    });
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.closeStatus = { code, reason: reason.toString() };
      this.#wake();
    });
  }

  /** Connects; listening starts before the upgrade completes, so nothing the server sends at once is missed. */
  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawWebSocketPeer> {
    const peer = new RawWebSocketPeer(new WebSocket(url, options));
    await opened(peer.ws);
    return peer;
  }

  /** Sends one request as one message. */
  send(request: CommandRequest): void {
    this.ws.send(encodeFrame(encodeRequest(request)));
  }

  /**
   * Waits for `n` more responses, checking that each message held exactly one frame (fails if the
   * connection closes first).
   */
  async responses(n: number): Promise<CommandResponse[]> {
    while (this.messages.length - this.#read < n) {
      if (this.closeStatus !== undefined) {
        throw new Error(`closed (${this.closeStatus.code} ${this.closeStatus.reason}) after ${this.messages.length - this.#read} of ${n} responses`);
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    const out: CommandResponse[] = [];
    for (const message of this.messages.slice(this.#read, this.#read + n)) {
      const decoder = new FrameDecoder();
      decoder.push(message);
      const payload = decoder.next();
      if (payload === undefined || decoder.bufferedBytes !== 0) throw new Error(`a message of ${message.length} bytes is not exactly one frame`);
      out.push(decodeResponse(payload));
    }
    this.#read += n;
    return out;
  }

  /** Resolves with the close code and reason once the server has closed the connection. */
  async closed(): Promise<{ code: number; reason: string }> {
    while (this.closeStatus === undefined) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.closeStatus;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/**
 * A WebSocket handshake by hand on a bare TCP socket, for byte sequences no WebSocket library
 * sends (a message cut short). Resolves with the socket once the server answered 101.
 */
export async function rawWebSocket(url: string): Promise<net.Socket> {
  const { hostname, port, pathname } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  await once(socket, 'connect');
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head += chunk.toString('latin1');
  }
  if (!head.startsWith('HTTP/1.1 101')) throw new Error(`no upgrade: ${head.split('\r\n')[0]}`);
  return socket;
}

/** A masked client frame header (FIN, binary) announcing `length` payload bytes, then the mask key. */
export function clientFrameHeader(length: number): Buffer {
  const mask = Buffer.alloc(4);
  if (length < 126) return Buffer.concat([Buffer.from([0x82, 0x80 | length]), mask]);
  if (length < 65536) return Buffer.concat([Buffer.from([0x82, 0x80 | 126, length >> 8, length & 0xff]), mask]);
  const ext = Buffer.alloc(8);
  ext.writeBigUInt64BE(BigInt(length));
  return Buffer.concat([Buffer.from([0x82, 0x80 | 127]), ext, mask]);
}
