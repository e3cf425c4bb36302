/**
 * Every transport the end-to-end suites run over: TCP and mutual TLS, each plain or multiplexed
 * with yamux, and WebSocket, plain and over mutual TLS.
 */
import { after, before, describe } from 'node:test';
import type { Duplex } from 'node:stream';
import type { KvClient } from '../../src/client/client.js';
import { openSocket } from '../../src/client/socket.js';
import { YamuxSession } from '../../src/transport/yamux.js';
import { makeTlsFixture } from './certs.js';
import { RawPeer, startServer, type Running } from './server.js';
import { startWebSocketServer } from './websocket.js';

/** A server on a fresh mutual-TLS setup: certificates generated for this run only. */
export async function startMtlsServer(
  options: Parameters<typeof startServer>[0] = {},
  clientOptions: Parameters<typeof startServer>[1] = {},
): Promise<Running> {
  const tls = await makeTlsFixture();
  const { pems } = tls;
  const running = await startServer(
    { ...options, tls: { cert: pems.serverCert, key: pems.serverKey, clientCa: pems.caCert } },
    { ...clientOptions, tls: { ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey } },
  );
  return {
    ...running,
    close: async () => {
      await running.close();
      await tls.cleanup();
    },
  };
}

export const TRANSPORTS: Record<string, () => Promise<Running>> = {
  tcp: () => startServer(),
  'mutual TLS': () => startMtlsServer(),
  yamux: () => startServer({ mux: 'yamux' }, { mux: 'yamux' }),
  'yamux over mutual TLS': () => startMtlsServer({ mux: 'yamux' }, { mux: 'yamux' }),
  websocket: () => startWebSocketServer(),
  'websocket over mutual TLS': () => startWebSocketServer({ mtls: true }),
};

/** What a suite over one transport works with; set before its first test. */
export interface TransportEnv {
  running: Running;
  kv: KvClient;
}

/** Describes `title` once per transport, each with its own server and a connected client. */
export function forEachTransport(title: string, body: (env: TransportEnv) => void): void {
  for (const [name, start] of Object.entries(TRANSPORTS)) {
    describe(`${title} over ${name}`, () => {
      const env = {} as TransportEnv;
      before(async () => {
        env.running = await start();
        env.kv = await env.running.client();
      });
      after(async () => {
        await env.kv.close();
        await env.running.close();
      });
      body(env);
    });
  }
}

/** A server started with `options` on each transport, plain TCP, mutual TLS and yamux (over TCP). */
export const TRANSPORTS_WITH: Record<string, (options: Parameters<typeof startServer>[0]) => Promise<Running>> = {
  tcp: (options) => startServer(options),
  'mutual TLS': (options) => startMtlsServer(options),
  yamux: (options) => startServer({ ...options, mux: 'yamux' }, { mux: 'yamux' }),
};

/**
 * A raw frame stream to `running` over its transport: a connection, or over yamux a stream of a
 * session of its own (closed with the stream's connection when the peer is destroyed).
 */
export async function rawStream(running: Running, maxFrameSize?: number): Promise<RawPeer<Duplex>> {
  const socket = await openSocket(running.clientOptions);
  if (running.clientOptions.mux !== 'yamux') return RawPeer.over<Duplex>(socket, maxFrameSize);
  const session = new YamuxSession(socket, 'client', { keepAliveMs: false });
  session.on('error', () => {});
  const stream = session.open();
  stream.once('close', () => session.destroy());
  return RawPeer.over<Duplex>(stream, maxFrameSize);
}
