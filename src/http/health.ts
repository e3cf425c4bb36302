/**
 * Liveness and readiness (SPEC 6): `/healthz` answers 200 while the process runs; `/readyz`
 * answers 200 only between "every listener accepts" and "shutdown began", and only while the
 * store says it can serve — so a load balancer sends traffic to a node only when it can take it.
 */
import type { MaybePromise } from '../storage/store.js';
import { sendText, type HttpListener } from './listener.js';

/** Where the server is in its life. */
export type ServerPhase = 'starting' | 'ready' | 'stopping';

/** Whether a dependency can serve now; a reason when it cannot. */
export interface HealthReport {
  readonly healthy: boolean;
  /** What is wrong, for the operator reading `/readyz`. */
  readonly detail?: string;
}

/** A check `/readyz` runs while the server is ready, e.g. the store's `health()`. */
export type HealthCheck = () => MaybePromise<HealthReport>;

/** A check that takes longer than this counts as failed. */
export const HEALTH_CHECK_TIMEOUT_MS = 2_000;

/** The server's readiness: its phase, set by whoever runs the server, and the checks of its dependencies. */
export class Readiness {
  #phase: ServerPhase = 'starting';
  readonly #checks: { name: string; check: HealthCheck }[] = [];

  get phase(): ServerPhase {
    return this.#phase;
  }

  /** Every listener accepts: ready, unless a check says otherwise. Ignored once stopping. */
  ready(): void {
    if (this.#phase === 'starting') this.#phase = 'ready';
  }

  /** Shutdown began: not ready from now on. */
  stopping(): void {
    this.#phase = 'stopping';
  }

  /** Adds a dependency whose health readiness requires. */
  addCheck(name: string, check: HealthCheck): this {
    this.#checks.push({ name, check });
    return this;
  }

  /** Whether the server is ready now and, when not, why. */
  async report(): Promise<HealthReport> {
    if (this.#phase === 'starting') return { healthy: false, detail: 'starting' };
    if (this.#phase === 'stopping') return { healthy: false, detail: 'shutting down' };
    const reports = await Promise.all(this.#checks.map(({ name, check }) => runCheck(name, check)));
    const failed = reports.filter((r) => !r.healthy);
    if (failed.length > 0) return { healthy: false, detail: failed.map((r) => r.detail).join('; ') };
    // A check may have run across the start of shutdown.
    return this.#phase === 'ready' ? { healthy: true } : { healthy: false, detail: 'shutting down' };
  }
}

/** Registers `GET /healthz` and `GET /readyz` on `listener`. */
export function addHealthRoutes(listener: HttpListener, readiness: Readiness): void {
  listener.route('GET', '/healthz', (_req, res) => sendText(res, 200, 'ok\n'));
  listener.route('GET', '/readyz', async (_req, res) => {
    const report = await readiness.report();
    sendText(res, report.healthy ? 200 : 503, report.healthy ? 'ok\n' : `not ready: ${report.detail ?? 'unknown'}\n`);
  });
}

async function runCheck(name: string, check: HealthCheck): Promise<HealthReport> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<HealthReport>((resolve) => {
    timer = setTimeout(() => resolve({ healthy: false, detail: `no answer within ${HEALTH_CHECK_TIMEOUT_MS} ms` }), HEALTH_CHECK_TIMEOUT_MS);
  });
  try {
    const report = await Promise.race([Promise.resolve().then(check), timeout]);
    return report.healthy ? report : { healthy: false, detail: `${name}: ${report.detail ?? 'unhealthy'}` };
  } catch (err) {
    return { healthy: false, detail: `${name}: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}
