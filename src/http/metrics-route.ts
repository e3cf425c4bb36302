/** `GET /metrics`: the Prometheus text exposition of a metrics registry. */
import type { HttpListener } from './listener.js';

/** What `/metrics` serves: prom-client's `Registry` is one. */
export interface MetricsExposition {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** Registers `GET /metrics` on `listener`. */
export function addMetricsRoute(listener: HttpListener, exposition: MetricsExposition): void {
  listener.route('GET', '/metrics', async (_req, res) => {
    const body = await exposition.metrics();
    res.statusCode = 200;
    res.setHeader('Content-Type', exposition.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Length', Buffer.byteLength(body));
    res.end(body);
  });
}
