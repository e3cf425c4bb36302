/**
 * Turning a run into numbers people and scripts read: a summary object (the `--json` line),
 * a readable block, and the TTY progress line.
 */
import type { BenchOptions } from './options.js';
import type { RunProgress, RunResult } from './runner.js';

/** The result of one benchmark, as printed by `--json`. */
export interface BenchReport {
  command: string;
  connections: number;
  pipeline: number;
  mux: string;
  /** Over WebSocket (`--ws`). */
  websocket: boolean;
  tls: boolean;
  keyspace: number;
  valueSize: number;
  /** Requests that completed (received a response of any status). */
  requests: number;
  durationSec: number;
  opsPerSec: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** `errorResponses + connectionErrors`. */
  errors: number;
  errorResponses: number;
  connectionErrors: number;
  /** Requests lost in flight on failed streams (resent elsewhere in request-count mode). */
  lostRequests: number;
  /** Fields written before the run, untimed. */
  preloaded: number;
  /** CPU the load generator used during the run, in percent of one core (user + system). */
  generatorCpuPercent: number;
  /** Why the run ended early, when it did. */
  aborted?: string;
}

const ms = (micros: number): number => Math.round(micros) / 1000;

/** Summarizes a run. `connectFailures` are streams that never opened. */
export function summarize(
  options: BenchOptions,
  result: RunResult,
  connectFailures: number,
  preloaded: number,
  cpu: NodeJS.CpuUsage,
): BenchReport {
  const h = result.histogram;
  const durationSec = result.elapsedMs / 1000;
  const empty = h.totalCount === 0;
  // A percentile is reported as the top of its histogram bucket, which can lie above the exact maximum.
  const at = (p: number): number => (empty ? 0 : ms(Math.min(h.getValueAtPercentile(p), h.maxValue)));
  const connectionErrors = result.connectionErrors + connectFailures;
  const report: BenchReport = {
    command: options.command,
    connections: options.connections,
    pipeline: options.pipeline,
    mux: options.mux,
    websocket: options.websocket,
    tls: options.tls !== undefined,
    keyspace: options.keyspace,
    valueSize: options.valueSize,
    requests: result.completed,
    durationSec: Math.round(durationSec * 1000) / 1000,
    opsPerSec: result.completed === 0 ? 0 : Math.round(result.completed / durationSec),
    meanMs: empty ? 0 : Math.round(h.mean) / 1000,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: empty ? 0 : ms(h.maxValue),
    errors: result.errorResponses + connectionErrors,
    errorResponses: result.errorResponses,
    connectionErrors,
    lostRequests: result.lostRequests,
    preloaded,
    generatorCpuPercent: Math.round((cpu.user + cpu.system) / 10 / result.wallMs),
  };
  if (result.aborted !== undefined) report.aborted = result.aborted;
  return report;
}

/** The readable summary. */
export function formatReport(r: BenchReport, server: string): string {
  const lines = [
    `protokv bench: ${r.command.toUpperCase()} against ${server}${r.tls ? ' (TLS)' : ''}${r.mux === 'yamux' ? ' over yamux' : ''}${r.websocket ? ' over WebSocket' : ''}`,
    `  ${r.mux === 'yamux' ? `${r.connections} yamux streams on one connection` : `${r.connections} ${r.websocket ? 'WebSocket connections' : 'connections'}`}, ` +
      `pipeline ${r.pipeline}, keyspace ${r.keyspace}, values ${r.valueSize} bytes` +
      (r.preloaded > 0 ? `, ${r.preloaded} fields preloaded` : ''),
    `  ${r.requests} requests in ${r.durationSec.toFixed(3)} s`,
    `  throughput: ${r.opsPerSec.toLocaleString('en-US')} ops/s`,
    `  latency (ms): p50 ${fmt(r.p50Ms)}  p90 ${fmt(r.p90Ms)}  p99 ${fmt(r.p99Ms)}  p99.9 ${fmt(r.p999Ms)}  max ${fmt(r.maxMs)}  mean ${fmt(r.meanMs)}`,
    `  errors: ${r.errors} (${r.errorResponses} error responses, ${r.connectionErrors} connection failures)`,
    `  load generator CPU: ${r.generatorCpuPercent}% of one core`,
  ];
  if (r.aborted !== undefined) lines.push(`  ended early: ${r.aborted}`);
  return `${lines.join('\n')}\n`;
}

function fmt(v: number): string {
  return v.toFixed(3);
}

/** One progress line (no newline), rewritten in place on a terminal. */
export function formatProgress(p: RunProgress, previous: RunProgress | undefined, target: number | undefined, durationMs: number | undefined): string {
  const seconds = p.elapsedMs / 1000;
  const windowMs = previous === undefined ? p.elapsedMs : p.elapsedMs - previous.elapsedMs;
  const windowOps = previous === undefined ? p.completed : p.completed - previous.completed;
  const rate = windowMs > 0 ? Math.round((windowOps * 1000) / windowMs) : 0;
  let done = '';
  if (target !== undefined) done = ` ${Math.floor((p.completed * 100) / target)}%`;
  else if (durationMs !== undefined) done = ` ${Math.min(100, Math.floor((p.elapsedMs * 100) / durationMs))}%`;
  return `${seconds.toFixed(1)}s${done}  ${p.completed.toLocaleString('en-US')} requests  ${rate.toLocaleString('en-US')} ops/s  ${p.errors} errors`;
}
