/** Small timing helpers shared by the client core: backoff, cancellable sleep, deadlines. */
import { abortError, asError, TimeoutError } from './errors.js';

/** How to reconnect after the connection is lost (ioredis / nats.js style). */
export interface ReconnectOptions {
  /** Delay before the first attempt, in ms (doubling after each failure). Default 100. */
  initialDelayMs?: number;
  /** Longest delay between attempts, in ms. Default 5,000. */
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row. Default: never. */
  maxAttempts?: number;
  /**
   * Your own policy instead of the above: the delay before attempt `attempt` (1, 2, …) in ms,
   * or `null` to give up.
   */
  delay?: (attempt: number, lastError: Error) => number | null;
}

/** The delay before attempt `attempt`, or null to give up. */
export type RetryPolicy = (attempt: number, lastError: Error) => number | null;

/**
 * Capped exponential backoff with jitter: the n-th delay is drawn uniformly from [d/2, d] where
 * d = min(maxDelayMs, initialDelayMs · 2^(n−1)), so clients that lost the same server do not
 * all come back in the same millisecond.
 */
export function retryPolicy(option: boolean | ReconnectOptions | undefined): RetryPolicy | undefined {
  if (option === false) return undefined;
  const o = option === true || option === undefined ? {} : option;
  if (o.delay !== undefined) return o.delay;
  const initial = o.initialDelayMs ?? 100;
  const max = o.maxDelayMs ?? 5_000;
  const attempts = o.maxAttempts ?? Infinity;
  for (const [name, v] of [['initialDelayMs', initial], ['maxDelayMs', max], ['maxAttempts', attempts]] as const) {
    if (!(v >= 0)) throw new RangeError(`reconnect.${name} must be a number >= 0, got ${v}`);
  }
  return (attempt) => {
    if (attempt > attempts) return null;
    const d = Math.min(max, initial * 2 ** Math.min(attempt - 1, 30));
    return d / 2 + Math.random() * (d / 2);
  };
}

/** Resolves after `ms`, or as soon as `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Resolves true when `p` settles within `ms`, false when the time runs out first. */
export function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/**
 * Runs `work` under a time limit and the caller's signal. When either fires first, `controller`
 * is aborted (so the work releases what it holds) and the result rejects with a `TimeoutError`
 * or `AbortError` naming `what`.
 */
export function deadline<T>(
  what: string,
  limits: { timeoutMs: number; signal?: AbortSignal },
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const { timeoutMs, signal } = limits;
  if (signal?.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = (): void =>
      settle(() => {
        controller.abort();
        reject(abortError(signal!, what));
      });
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () =>
              settle(() => {
                controller.abort();
                reject(new TimeoutError(`${what} got no answer within ${timeoutMs} ms`, timeoutMs));
              }),
            timeoutMs,
          )
        : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
    work(controller.signal).then(
      (v) => settle(() => resolve(v)),
      (err: unknown) => settle(() => reject(asError(err))),
    );
  });
}
