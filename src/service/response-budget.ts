/**
 * Sizing a response while it is gathered (SPEC 4): no response may exceed the maximum frame
 * size, and one that would is refused with 413 as soon as its entries pass the limit, long
 * before it is built whole — `HMGET` of one huge value named many times, or `HGETALL` of a
 * huge table, costs at most a frame's worth of work.
 */
import type { Kvpair, Value } from '../protocol/generated/abi.js';
import { OK_STATUS_SIZE, pairFieldSize, valueFieldSize } from '../protocol/response-encoder.js';
import { errors } from '../errors.js';

export class ResponseBudget {
  /** Encoded size of the response so far, status included. */
  #size = OK_STATUS_SIZE;

  /**
   * @param max the largest payload allowed (the maximum frame size)
   * @param what names the request in the 413 message, e.g. `HGETALL of table t`
   */
  constructor(
    readonly max: number,
    readonly what: () => string,
  ) {}

  /** Counts one value of `values`; throws the 413 once the response is over the limit. */
  addValue(v: Value | undefined): void {
    this.#size += valueFieldSize(v);
    if (this.#size > this.max) this.#refuse();
  }

  /** Counts one pair of `pairs`; throws the 413 once the response is over the limit. */
  addPair(p: Kvpair): void {
    this.#size += pairFieldSize(p);
    if (this.#size > this.max) this.#refuse();
  }

  #refuse(): never {
    throw errors.responseTooLarge(this.what(), this.max);
  }
}
