/**
 * A protokv server with its HTTP listener, for the web console's browser tests and screenshots:
 * the console at `/`, `/ws`, `/metrics`.
 */
import http from 'node:http';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KvClient } from '../../src/client/client.js';
import { WebSocketEndpoint } from '../../src/transport/websocket.js';
import { startServer } from './server.js';

export interface ConsoleServer {
  /** The console: `http://127.0.0.1:PORT/`. */
  url: string;
  /** `ws://127.0.0.1:PORT/ws`. */
  wsUrl: string;
  /** A Node client on the protokv port. */
  client(): Promise<KvClient>;
  close(): Promise<void>;
}

const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.map': 'application/json' };

export async function startConsoleServer(options: { allowedOrigins?: string[] } = {}): Promise<ConsoleServer> {
  const running = await startServer();
  const listener = http.createServer((req, res) => {
    const name = req.url === '/' ? 'index.html' : path.basename((req.url ?? '').split('?')[0]);
    readFile(path.join(CONSOLE_DIR, name)).then(
      (body) => res.writeHead(200, { 'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end('not found'),
    );
  });
  const endpoint = new WebSocketEndpoint({
    accept: (stream) => running.server.adopt(stream),
    allowedOrigins: options.allowedOrigins ?? [],
    secure: false,
    loopback: true,
  });
  listener.on('upgrade', (req, socket, head) => endpoint.handleUpgrade(req, socket, head));
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const port = (listener.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    client: () => running.client(),
    close: async () => {
      endpoint.close();
      await running.close();
      listener.closeAllConnections();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
