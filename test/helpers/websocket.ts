/**
 * protokv over WebSocket in tests: a real protokv server whose `/ws` endpoint listens on an
 * HTTP (or HTTPS, optionally mutual-TLS) server on a loopback port the OS picks, and clients
 * that reach it through real WebSocket connections.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { FrameDecoder, encodeFrame } from '../../src/codec/frame.js';
import type { CommandRequest, CommandResponse } from '../../src/protocol/generated/abi.js';
import { decodeResponse, encodeRequest } from '../../src/protocol/wire.js';
import { createClient, type KvClient } from '../../src/client/core/client.js';
import type { Transport } from '../../src/client/core/transport.js';
import { nodeCompression } from '../../src/client/node/compression.js';
import { duplexStream } from '../../src/client/node/socket-transport.js';
import { WebSocketEndpoint, type WebSocketEndpointOptions } from '../../src/transport/websocket.js';
import { WebSocketStream } from '../../src/transport/websocket-stream.js';
import type { CertificateSet } from '../../src/tls/certificates.js';
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
}

export interface WebSocketServerOptions {
  /** Serve HTTPS and demand client certificates (mutual TLS). */
  mtls?: boolean;
  endpoint?: Partial<WebSocketEndpointOptions>;
  server?: Parameters<typeof startServer>[0];
}

/** Starts a protokv server and an HTTP listener carrying its `/ws` endpoint. */
export async function startWebSocketServer(options: WebSocketServerOptions = {}): Promise<WebSocketRunning> {
  const running = await startServer(options.server ?? {});
  const tls = options.mtls ? await makeTlsFixture() : undefined;
  const pems: CertificateSet | undefined = tls?.pems;
  const listener =
    pems === undefined
      ? http.createServer()
      : https.createServer({ cert: pems.serverCert, key: pems.serverKey, ca: pems.caCert, requestCert: true, rejectUnauthorized: true });
  const endpoint = new WebSocketEndpoint({
    accept: (stream) => running.server.adopt(stream),
    inputBudget: running.server.inputBudget,
    allowedOrigins: [],
    secure: pems !== undefined,
    loopback: true,
    ...options.endpoint,
  });
  listener.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
  listener.on('request', (_req, res) => res.writeHead(404).end());
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const port = (listener.address() as AddressInfo).port;
  const scheme = pems === undefined ? 'ws' : 'wss';
  const url = `${scheme}://127.0.0.1:${port}/ws`;
  const wsOptions: WebSocket.ClientOptions = pems === undefined ? {} : { ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey };
  const client = (): Promise<KvClient> => connectWebSocketClient(url, wsOptions);
  return {
    ...running,
    url,
    origin: `${pems === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    endpoint,
    wsOptions,
    tlsFiles: tls?.files,
    client,
    close: async () => {
      endpoint.close();
      await running.close();
      listener.closeAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
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

/** The client core speaking over WebSocket connections, one per stream (a `Transport` of its own). */
export async function connectWebSocketClient(url: string, options: WebSocket.ClientOptions = {}): Promise<KvClient> {
  const transport: Transport = {
    address: url,
    multiplexed: false,
    openStream: async (handler) =>
      duplexStream(new WebSocketStream(await openWebSocket(url, options)), handler, url, { usingTls: url.startsWith('wss:') }),
    close: () => {},
  };
  return createClient(transport, nodeCompression);
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
