/**
 * Structured logging: JSON lines from pino, or pretty lines when stdout is a terminal.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Human-readable output; defaults to whether stdout is a terminal. */
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({ level, base: undefined, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino({ level, base: { pid: process.pid } });
}

/** A logger that drops everything; the default for embedded use and tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * One kind of event that clients can trigger at will (refused handshakes, refused connections,
 * timeouts), logged without letting them flood the log: the first `burst` events of each
 * interval are logged one by one, the rest are counted and reported in one summary line when
 * the interval ends.
 */
export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #level: 'warn' | 'info' | 'debug';
  readonly #msg: string;
  readonly #burst: number;
  readonly #intervalMs: number;
  #windowStart = 0;
  #inWindow = 0;
  #suppressed = 0;
  #summary: NodeJS.Timeout | undefined;

  constructor(logger: Logger, level: 'warn' | 'info' | 'debug', msg: string, options: { burst?: number; intervalMs?: number } = {}) {
    this.#logger = logger;
    this.#level = level;
    this.#msg = msg;
    this.#burst = options.burst ?? 10;
    this.#intervalMs = options.intervalMs ?? 10_000;
  }

  /** Logs one event with `fields`, or counts it when this interval's burst is spent. */
  log(fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    if (now - this.#windowStart >= this.#intervalMs) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (++this.#inWindow <= this.#burst) {
      this.#logger[this.#level](fields, this.#msg);
      return;
    }
    this.#suppressed++;
    if (this.#summary === undefined) {
      this.#summary = setTimeout(() => this.#report(), this.#windowStart + this.#intervalMs - now);
      this.#summary.unref();
    }
  }

  /** Writes the summary of events not logged one by one, if any (also done when each interval ends). */
  flush(): void {
    clearTimeout(this.#summary);
    this.#report();
  }

  #report(): void {
    this.#summary = undefined;
    const suppressed = this.#suppressed;
    if (suppressed === 0) return;
    this.#suppressed = 0;
    this.#logger[this.#level]({ suppressed, intervalMs: this.#intervalMs }, `${this.#msg} (${suppressed} more not logged one by one)`);
  }
}
