/**
 * The time limit on a frame in progress (SPEC 4: slow-drip connections are closed). A frame must
 * be complete within `timeoutMs` of its first byte, plus one second per MiB of its announced
 * size: a minimum rate of 1 MiB/s for large frames, while a client dripping a byte a second never
 * completes even the smallest one in time. Used for protokv frames and for yamux frames alike.
 */
import { performance } from 'node:perf_hooks';

/** Each MiB a frame announces adds a second to its time limit. */
const BYTES_PER_EXTRA_SECOND = 1024 * 1024;

/** The time a frame of `bytes` is given, under a base limit of `timeoutMs`. */
export function frameAllowanceMs(timeoutMs: number, bytes: number): number {
  return timeoutMs + Math.floor(bytes / BYTES_PER_EXTRA_SECOND) * 1000;
}

export class FrameTimer {
  readonly timeoutMs: number;
  readonly #onTimeout: () => void;
  #timer: NodeJS.Timeout | undefined;
  /** The delay `#timer` was created with (`refresh` reuses it). */
  #delay = 0;
  /** The frame being timed, or -1. */
  #frame = -1;
  #start = 0;
  #allowance = 0;

  /** `timeoutMs` 0 turns timing off. */
  constructor(timeoutMs: number, onTimeout: () => void) {
    this.timeoutMs = timeoutMs;
    this.#onTimeout = onTimeout;
  }

  /**
   * Frame number `frame`, of `bytes` as far as known (its header may not have arrived yet), is
   * awaited from the peer. The clock starts with a new frame number and keeps running for the
   * same one; learning a larger size extends the limit.
   */
  await(frame: number, bytes: number): void {
    if (this.timeoutMs === 0) return;
    const allowance = frameAllowanceMs(this.timeoutMs, bytes);
    if (frame === this.#frame && allowance <= this.#allowance) return;
    if (frame !== this.#frame) {
      this.#frame = frame;
      this.#start = performance.now();
      this.#allowance = allowance;
      if (this.#timer !== undefined && this.#delay === allowance) {
        this.#timer.refresh();
        return;
      }
    }
    this.#allowance = allowance;
    this.#arm(Math.max(0, Math.ceil(this.#start + allowance - performance.now())));
  }

  /**
   * Nothing is awaited from the peer any more (the frame completed, or reading stopped). The
   * timer is left to fire unheeded rather than cleared, so the next frame can `refresh` it: on
   * the hot path that is cheaper than a new timer per frame.
   */
  stop(): void {
    this.#frame = -1;
  }

  /** Stops for good (the stream closed). */
  dispose(): void {
    this.#frame = -1;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delay: number): void {
    clearTimeout(this.#timer);
    this.#delay = delay;
    this.#timer = setTimeout(this.#fire, delay);
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    if (this.#frame === -1) return;
    this.#frame = -1;
    this.#onTimeout();
  };
}
