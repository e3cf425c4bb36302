/**
 * `protokv serve`: loads the configuration, opens the store, starts the HTTP listener (health,
 * metrics, `/ws` and the web console) and the protokv (and RESP) listeners, and shuts down gracefully on SIGINT/SIGTERM: `/readyz` turns 503
 * at once, the listeners stop accepting and answer what they received, the store closes,
 * buffered spans are exported, then the HTTP listener closes and the process exits 0.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, formatListenAddress, isLoopbackHost, loadConfig, renderServeHelp, type ServerConfig } from '../config.js';
import { createLogger, type Logger } from '../logger.js';
import { isLmdbCommitFailure, LmdbStore } from '../storage/lmdb.js';
import { MemoryStore } from '../storage/memory.js';
import { RedisStore } from '../storage/redis.js';
import { RedisBroker } from '../storage/redis-broker.js';
import type { Broker } from '../service/broker.js';
import type { Store } from '../storage/store.js';
import { Service } from '../service/service.js';
import { ProtokvServer, type TlsMaterial } from '../transport/server.js';
import { RespServer } from '../resp/server.js';
import { HttpListener } from '../http/listener.js';
import { addHealthRoutes, Readiness } from '../http/health.js';
import { addMetricsRoute } from '../http/metrics-route.js';
import { createInstrumentation, type Instrumentation } from '../observability/instrumentation.js';
import { WebSocketEndpoint } from '../transport/websocket.js';
import { mountConsole } from '../console/site.js';
import { packageVersion } from './version.js';

export async function serveCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(renderServeHelp());
    return 0;
  }
  let config: ServerConfig;
  try {
    config = await loadConfig({ argv, env: process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`protokv serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel });
  process.on('unhandledRejection', (reason) => {
    // lmdb-js leaves a spare rejected promise behind each failed commit (e.g. disk full); the
    // writers already got their error, so it is logged, not fatal. Anything else is a bug: crash loudly.
    if (isLmdbCommitFailure(reason)) {
      logger.error({ err: reason }, 'store commit failed');
      return;
    }
    logger.fatal({ err: reason }, 'unhandled promise rejection');
    logger.flush();
    process.exit(1);
  });
  try {
    // Listening for signals before starting means one sent during start-up (or right after the
    // "listening" line) stops the server gracefully instead of killing it.
    const signalled = waitForSignal(logger);
    const running = await start(config, logger);
    await signalled;
    await running.close();
    logger.info('stopped');
    return 0;
  } catch (err) {
    logger.fatal({ err }, (err as Error).message);
    return 1;
  } finally {
    logger.flush();
  }
}

/** The configured store, and the broker that carries pub/sub between nodes sharing it. */
async function openStore(config: ServerConfig, logger: Logger, instrumentation: Instrumentation | null): Promise<{ store: Store; broker?: Broker }> {
  switch (config.store.kind) {
    case 'memory':
      return { store: new MemoryStore() };
    case 'lmdb': {
      const { durability, syncIntervalMs, cacheBytes } = config.persistence;
      return {
        store: LmdbStore.open(config.dataDir, {
          commitObserver: instrumentation ?? undefined,
          durability: durability === 'periodic' ? { mode: 'periodic', intervalMs: syncIntervalMs } : { mode: 'sync' },
          cacheBytes,
        }),
      };
    }
    case 'redis': {
      const files = config.storeTls ?? {};
      const read = (file: string | undefined) => (file === undefined ? Promise.resolve(undefined) : readFile(file));
      const [ca, cert, key] = await Promise.all([read(files.ca), read(files.cert), read(files.key)]);
      const store = await RedisStore.open(config.store.target, { tls: { ca, cert, key }, logger });
      try {
        return { store, broker: await RedisBroker.start(store.engine) };
      } catch (err) {
        await store.close();
        throw new Error(`cannot set up pub/sub on the store at ${store.address}: ${(err as Error).message}`, { cause: err });
      }
    }
  }
}

/** How the log names the persistent store's durability. */
function describeDurability({ persistence }: ServerConfig): string {
  return persistence.durability === 'periodic' ? `periodic (synced within ${persistence.syncIntervalMs} ms)` : 'sync';
}

/** How the log names the store. */
function describeStore(config: ServerConfig, store: Store): string {
  return store instanceof RedisStore ? store.address : config.store.kind;
}

/** A started server: everything `close` stops, in order. */
interface Running {
  close(): Promise<void>;
}

async function start(config: ServerConfig, logger: Logger): Promise<Running> {
  // Metrics are only worth keeping when something can scrape them.
  const instrumentation = await createInstrumentation({
    metrics: config.http.metrics && config.http.listen !== undefined,
    tracing: config.tracing,
    serviceVersion: packageVersion(),
  });
  const { store, broker } = await openStore(config, logger, instrumentation);
  const service = new Service({ store, broker, logger, maxKeysPerCommand: config.limits.maxKeysPerCommand, instrumentation });
  let tls: TlsMaterial | undefined;
  if (config.tls) {
    const [cert, key, clientCa] = await Promise.all([
      readFile(config.tls.cert),
      readFile(config.tls.key),
      config.tls.clientCa === undefined ? undefined : readFile(config.tls.clientCa),
    ]);
    tls = { cert, key, clientCa };
  }

  const readiness = new Readiness();
  if (store.healthy !== undefined) {
    const healthy = store.healthy.bind(store);
    readiness.addCheck('store', () => (healthy() ? { healthy: true } : { healthy: false, detail: `${describeStore(config, store)} is unavailable` }));
  }
  let http: HttpListener | undefined;
  if (config.http.listen !== undefined) {
    const address = config.http.listen;
    try {
      http = await HttpListener.listen({ host: address.host, port: address.port, tls, logger });
    } catch (err) {
      await service.close();
      await instrumentation?.shutdown();
      throw new Error(`cannot listen for HTTP on ${formatListenAddress(address)}: ${(err as Error).message}`, { cause: err });
    }
    addHealthRoutes(http, readiness);
    if (instrumentation?.figures) {
      const { createMetricsRegistry } = await import('../observability/metrics.js');
      addMetricsRoute(http, createMetricsRegistry({ figures: instrumentation.figures, pubsub: service.pubsub, store }));
    }
  }

  let server: ProtokvServer;
  try {
    server = await ProtokvServer.listen({
      service,
      host: config.listen.host,
      port: config.listen.port,
      tls,
      mux: config.mux,
      ...config.limits,
    });
  } catch (err) {
    await http?.close();
    await service.close();
    await instrumentation?.shutdown();
    throw new Error(`cannot listen on ${formatListenAddress(config.listen)}: ${(err as Error).message}`, { cause: err });
  }
  let webSocket: WebSocketEndpoint | undefined;
  if (http !== undefined) {
    // `/ws` streams are served by the protokv server, under its limits and its shutdown.
    const origin = { transport: 'websocket', port: http.address().port } as const;
    webSocket = new WebSocketEndpoint({
      accept: (stream) => server.adopt(stream, origin),
      allowedOrigins: config.http.allowedOrigins,
      secure: http.secure,
      loopback: isLoopbackHost(config.http.listen!.host),
      maxFrameSize: config.limits.maxFrameSize,
      idleTimeoutMs: config.limits.idleTimeoutMs,
      inputBudget: server.inputBudget,
      frameTimeoutMs: config.limits.frameTimeoutMs,
      logger,
      instrumentation,
    }).attach(http);
    mountConsole(http, logger);
  }
  logger.info(
    {
      address: formatListenAddress(server.address()),
      http: http === undefined ? 'off' : `${http.secure ? 'https' : 'http'}://${formatListenAddress(http.address())}`,
      store: describeStore(config, store),
      dataDir: config.store.kind === 'lmdb' ? config.dataDir : undefined,
      durability: config.store.kind === 'lmdb' ? describeDurability(config) : undefined,
      tls: config.tls ? (config.tls.clientCa ? 'mutual' : 'server') : 'off',
      mux: config.mux,
      metrics: instrumentation?.figures ? 'on' : 'off',
      tracing: config.tracing ? `${config.tracing.protocol} to ${config.tracing.endpoint}, sampling ${config.tracing.sampleRatio}` : 'off',
    },
    'listening',
  );
  let resp: RespServer | undefined;
  if (config.resp !== undefined) {
    try {
      resp = await RespServer.listen({
        service,
        host: config.resp.host,
        port: config.resp.port,
        tls,
        storeKind: describeStore(config, store),
        ...config.limits,
        // One budget for the input of both listeners.
        inputBudget: server.inputBudget,
      });
    } catch (err) {
      await server.close();
      await instrumentation?.shutdown();
      await http?.close();
      throw new Error(`cannot listen on ${formatListenAddress(config.resp)} (--resp): ${(err as Error).message}`, { cause: err });
    }
    logger.info({ address: formatListenAddress(resp.address()), protocol: 'resp', tls: config.tls ? (config.tls.clientCa ? 'mutual' : 'server') : 'off' }, 'listening');
  }
  readiness.ready();
  return {
    async close() {
      // Load balancers learn first, while requests in flight are still being answered. The HTTP
      // listener answers until the end, but it alone must not keep a stopping process alive (were
      // the store never to finish closing).
      readiness.stopping();
      http?.unref();
      // No new WebSocket connections; open ones close with 1001 once the server has drained them.
      webSocket?.close();
      // The RESP listener finishes first: the protobuf listener's close also closes the store.
      await resp?.close();
      await server.close();
      await instrumentation?.shutdown();
      await http?.close();
    },
  };
}

function waitForSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'shutting down: finishing requests in flight');
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
