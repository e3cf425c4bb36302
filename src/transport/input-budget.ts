/**
 * The server-wide budget for buffered input (SPEC 4): every stream's partly received frames
 * together may hold at most `limit` bytes. A stream reserves the whole announced size of the
 * frame it is receiving — nothing is allocated for it, bytes are kept only as they arrive — and
 * stops reading while its frame does not fit, until other frames complete or their streams
 * close. A frame that was granted its reservation can always complete, so streams never wait on
 * each other in a circle.
 *
 * Small frames (at most `SMALL_FRAME_BYTES`) are counted but never kept waiting: a frame that
 * spans two reads is ordinary, and a few large frames must not be able to hold up every client.
 */

/** Frames up to this size are never kept waiting for the budget. */
export const SMALL_FRAME_BYTES = 64 * 1024;

/** Default input budget: room for four frames of the default maximum size. */
export const DEFAULT_INPUT_BUDGET = 256 * 1024 * 1024;

/** A stream waiting for room; `retry` returns true once it got what it needed. */
export interface BudgetWaiter {
  retry(): boolean;
}

export class InputBudget {
  readonly limit: number;
  #used = 0;
  /** Streams waiting for room, in the order they started waiting. */
  #waiters: BudgetWaiter[] = [];

  constructor(limit = DEFAULT_INPUT_BUDGET) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('the input budget must be a positive number of bytes');
    this.limit = limit;
  }

  /** Bytes reserved or held right now, by every stream together. */
  get used(): number {
    return this.#used;
  }

  /** Streams waiting for room. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Reserves `bytes` more for a frame of `frameBytes` in all, if they fit: always for a small
   * frame; for a larger one if the budget has room, or if it is otherwise empty (a frame larger
   * than the whole budget is received alone).
   */
  tryReserve(bytes: number, frameBytes: number): boolean {
    if (frameBytes > SMALL_FRAME_BYTES && this.#used + bytes > this.limit && this.#used > 0) return false;
    this.#used += bytes;
    return true;
  }

  /** Counts bytes already held whether or not they fit: input that has arrived is in memory. */
  charge(bytes: number): void {
    this.#used += bytes;
  }

  /** Returns bytes to the budget and lets waiting streams that now fit go on, first come first served. */
  release(bytes: number): void {
    this.#used -= bytes;
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) if (!w.retry()) this.#waiters.push(w);
  }

  /** Queues `waiter` until room frees up (a waiter already queued keeps its place). */
  wait(waiter: BudgetWaiter): void {
    if (!this.#waiters.includes(waiter)) this.#waiters.push(waiter);
  }

  /** Forgets a waiter whose stream has gone. */
  cancel(waiter: BudgetWaiter): void {
    const i = this.#waiters.indexOf(waiter);
    if (i >= 0) this.#waiters.splice(i, 1);
  }
}

/**
 * One stream's share of the budget, kept equal to what its buffered input will need once the
 * frame (or command) at its head is complete. The stream tells it what it needs after each read;
 * while that does not fit, the stream is queued as a waiter and retried when room frees up.
 */
export class InputReservation {
  readonly #budget: InputBudget;
  readonly #waiter: BudgetWaiter;
  #reserved = 0;
  #waiting = false;

  constructor(budget: InputBudget, waiter: BudgetWaiter) {
    this.#budget = budget;
    this.#waiter = waiter;
  }

  /**
   * Reserves `needed` bytes in all; `held` have already arrived (they are counted whether they
   * fit or not). False when the rest does not fit: the waiter is then queued for room.
   */
  update(needed: number, held: number): boolean {
    const budget = this.#budget;
    if (needed <= this.#reserved) {
      if (needed < this.#reserved) budget.release(this.#reserved - needed);
      this.#reserved = needed;
      return true;
    }
    if (budget.tryReserve(needed - this.#reserved, needed)) {
      this.#reserved = needed;
      return true;
    }
    if (held > this.#reserved) {
      budget.charge(held - this.#reserved);
      this.#reserved = held;
    }
    if (!this.#waiting) {
      this.#waiting = true;
      budget.wait(this.#waiter);
    }
    return false;
  }

  /** The budget retried the waiter and it now fits: it has left the queue. */
  retried(): void {
    this.#waiting = false;
  }

  /** Gives everything back and leaves the queue: the stream has closed. */
  release(): void {
    if (this.#waiting) this.#budget.cancel(this.#waiter);
    this.#waiting = false;
    if (this.#reserved > 0) this.#budget.release(this.#reserved);
    this.#reserved = 0;
  }
}
