/**
 * `protokv serve`: loads the configuration, opens the store, starts the HTTP listener and the
 * protokv listener, and shuts down gracefully on SIGINT/SIGTERM: `/readyz` turns 503 at once,
 * the listener stops accepting and answers what it received, the store closes, buffered spans
 * are exported, then the HTTP listener closes and the process exits 0.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, formatListenAddress, loadConfig, renderServeHelp, type ServerConfig } from '../config.js';
import { createLogger, type Logger } from '../logger.js';
import { isLmdbCommitFailure, LmdbStore } from '../storage/lmdb.js';
import { MemoryStore } from '../storage/memory.js';
import type { Store } from '../storage/store.js';
import { Service } from '../service/service.js';
import { ProtokvServer, type TlsMaterial } from '../transport/server.js';
import { HttpListener } from '../http/listener.js';
import { addHealthRoutes, Readiness } from '../http/health.js';
import { addMetricsRoute } from '../http/metrics-route.js';
import { createInstrumentation } from '../observability/instrumentation.js';
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

/** A started server: everything `close` stops, in order. */
interface Running {
  close(): Promise<void>;
}

async function start(config: ServerConfig, logger: Logger): Promise<Running> {
  // Metrics are only worth keeping when something can scrape them.
  const instrumentation = await createInstrumentation({
    metrics: config.metrics && config.http !== null,
    tracing: config.tracing,
    serviceVersion: packageVersion(),
  });
  const store: Store = config.memory ? new MemoryStore() : LmdbStore.open(config.dataDir, { commitObserver: instrumentation ?? undefined });
  const service = new Service({ store, logger, maxKeysPerCommand: config.limits.maxKeysPerCommand, instrumentation });
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
  if (store.health !== undefined) readiness.addCheck('store', store.health.bind(store));
  let http: HttpListener | undefined;
  if (config.http !== null) {
    try {
      http = await HttpListener.listen({ host: config.http.host, port: config.http.port, tls, logger });
    } catch (err) {
      await service.close();
      await instrumentation?.shutdown();
      throw new Error(`cannot listen for HTTP on ${formatListenAddress(config.http)}: ${(err as Error).message}`, { cause: err });
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
  readiness.ready();
  logger.info(
    {
      address: formatListenAddress(server.address()),
      http: http === undefined ? 'off' : `${http.secure ? 'https' : 'http'}://${formatListenAddress(http.address())}`,
      store: config.memory ? 'memory' : 'lmdb',
      dataDir: config.memory ? undefined : config.dataDir,
      tls: config.tls ? (config.tls.clientCa ? 'mutual' : 'server') : 'off',
      mux: config.mux,
      metrics: instrumentation?.figures ? 'on' : 'off',
      tracing: config.tracing ? `${config.tracing.protocol} to ${config.tracing.endpoint}, sampling ${config.tracing.sampleRatio}` : 'off',
    },
    'listening',
  );
  return {
    async close() {
      // Load balancers learn first, while requests in flight are still being answered.
      readiness.stopping();
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
