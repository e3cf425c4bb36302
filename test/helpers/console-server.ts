/**
 * A protokv server with its HTTP listener wired as `protokv serve` wires it, for the web
 * console's browser tests and screenshots: the console at `/`, `/ws`, `/metrics`.
 */
import type { KvClient } from '../../src/client/client.js';
import type { Service } from '../../src/service/service.js';
import { startWebSocketServer } from './websocket.js';

export interface ConsoleServer {
  /** The console: `http://127.0.0.1:PORT/`. */
  url: string;
  /** `ws://127.0.0.1:PORT/ws`. */
  wsUrl: string;
  service: Service;
  /** A Node client on the protokv port. */
  client(): Promise<KvClient>;
  close(): Promise<void>;
}

export async function startConsoleServer(options: { allowedOrigins?: string[] } = {}): Promise<ConsoleServer> {
  const running = await startWebSocketServer({ console: true, endpoint: { allowedOrigins: options.allowedOrigins ?? [] } });
  return {
    url: `${running.origin}/`,
    wsUrl: running.url,
    service: running.service,
    client: () => running.tcpClient(),
    close: () => running.close(),
  };
}
