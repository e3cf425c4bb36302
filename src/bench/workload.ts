/**
 * Request frames for the load generator, encoded once and then stamped.
 *
 * Every key is a 12-digit zero-padded number, so all requests of one command have the same
 * length and differ only in those digits. A {@link FrameTemplate} is the complete encoded frame
 * (header included) plus where its digits sit; producing a request costs one small copy and a
 * few digit writes, never a protobuf encode. Constant requests (PUBLISH) reuse one buffer.
 */
import { encodeFrame } from '../codec/frame.js';
import type { CommandRequest } from '../protocol/generated/abi.js';
import { requests } from '../protocol/requests.js';
import { encodeRequest } from '../protocol/wire.js';
import type { BenchCommand } from './options.js';

/** Digits in every generated key: the same width as `redis-benchmark`'s `__rand_int__`. */
export const KEY_DIGITS = 12;

/** The name of key number `n`: its zero-padded decimal digits. */
export function keyName(n: number): string {
  return String(n).padStart(KEY_DIGITS, '0');
}

/** The table holding hash number `n` of an HGETALL benchmark. */
export function hashTable(table: string, n: number): string {
  return `${table}:${keyName(n)}`;
}

/** An encoded frame with slots of {@link KEY_DIGITS} digits to stamp, each with its own range. */
export class FrameTemplate {
  readonly bytes: Buffer;
  readonly #slots: Int32Array;
  /** Random numbers for each slot are drawn from `[0, range)`. */
  readonly range: number;

  /**
   * Builds the template from `build`, which must place each argument string exactly once in the
   * request. The slots are found by encoding twice with different digits and comparing.
   */
  constructor(slots: number, range: number, build: (keys: string[]) => CommandRequest) {
    const zeros = encodeFrame(encodeRequest(build(new Array<string>(slots).fill('0'.repeat(KEY_DIGITS)))));
    const ones = encodeFrame(encodeRequest(build(new Array<string>(slots).fill('1'.repeat(KEY_DIGITS)))));
    if (zeros.length !== ones.length) throw new Error('request template: the key width changed the frame length');
    const offsets: number[] = [];
    for (let i = 0; i < zeros.length; ) {
      if (zeros[i] === ones[i]) {
        i++;
        continue;
      }
      for (let j = 0; j < KEY_DIGITS; j++) {
        if (zeros[i + j] === ones[i + j]) throw new Error('request template: a key slot is not contiguous');
      }
      offsets.push(i);
      i += KEY_DIGITS;
    }
    if (offsets.length !== slots) throw new Error(`request template: found ${offsets.length} key slots, expected ${slots}`);
    this.bytes = zeros;
    this.#slots = Int32Array.from(offsets);
    this.range = range;
  }

  get length(): number {
    return this.bytes.length;
  }

  /** Whether every request from this template is the same bytes. */
  get constant(): boolean {
    return this.#slots.length === 0;
  }

  /** Writes one request at `offset` in `target`, with fresh random keys. */
  stamp(target: Buffer, offset: number): void {
    this.bytes.copy(target, offset);
    const slots = this.#slots;
    const range = this.range;
    for (let s = 0; s < slots.length; s++) {
      let n = Math.floor(Math.random() * range);
      const start = offset + slots[s];
      for (let d = start + KEY_DIGITS - 1; d >= start; d--) {
        target[d] = 48 + (n % 10);
        n = Math.floor(n / 10);
      }
    }
  }
}

/** What the load generator needs from a workload. */
export interface Workload {
  /** Fills a buffer with `count` requests and returns it. */
  batch(count: number): Buffer;
}

/** Workload parameters (the subset of the bench options that shape requests). */
export interface WorkloadSpec {
  command: BenchCommand;
  table: string;
  keyspace: number;
  valueSize: number;
  fields: number;
}

/** The value every write carries: a string of `size` bytes. */
export function benchValue(size: number): string {
  return 'x'.repeat(size);
}

/** Number of hashes an HGETALL benchmark spreads the keyspace over. */
export function hashCount(spec: Pick<WorkloadSpec, 'keyspace' | 'fields'>): number {
  return Math.max(1, Math.floor(spec.keyspace / spec.fields));
}

/** Builds the request generator for `spec`. */
export function createWorkload(spec: WorkloadSpec): Workload {
  const { table, keyspace } = spec;
  const value = benchValue(spec.valueSize);
  const hset = () => new FrameTemplate(1, keyspace, ([k]) => requests.hset(table, k, value));
  const hget = () => new FrameTemplate(1, keyspace, ([k]) => requests.hget(table, k));
  switch (spec.command) {
    case 'hset':
      return single(hset());
    case 'hget':
      return single(hget());
    case 'hmget':
      return single(new FrameTemplate(spec.fields, keyspace, (keys) => requests.hmget(table, keys)));
    case 'hgetall':
      return single(new FrameTemplate(1, hashCount(spec), ([n]) => requests.hgetall(`${table}:${n}`)));
    case 'publish':
      return single(new FrameTemplate(0, 1, () => requests.publish(table, value)));
    case 'mix':
      return mixed(hget(), hset());
  }
}

/** Every request from one template. */
function single(template: FrameTemplate): Workload {
  const size = template.length;
  if (template.constant) {
    // Sockets never modify what they are given, so the same bytes can be written again and again.
    const one = template.bytes;
    let many = one;
    return {
      batch(count) {
        if (count === 1) return one;
        if (many.length !== count * size) {
          many = Buffer.allocUnsafe(count * size);
          for (let i = 0; i < count; i++) one.copy(many, i * size);
        }
        return many;
      },
    };
  }
  return {
    batch(count) {
      const out = Buffer.allocUnsafe(count * size);
      for (let i = 0; i < count; i++) template.stamp(out, i * size);
      return out;
    },
  };
}

/** Each request is `a` or `b` with equal probability. */
function mixed(a: FrameTemplate, b: FrameTemplate): Workload {
  return {
    batch(count) {
      const picks = new Array<FrameTemplate>(count);
      let total = 0;
      for (let i = 0; i < count; i++) {
        const t = Math.random() < 0.5 ? a : b;
        picks[i] = t;
        total += t.length;
      }
      const out = Buffer.allocUnsafe(total);
      let offset = 0;
      for (const t of picks) {
        t.stamp(out, offset);
        offset += t.length;
      }
      return out;
    },
  };
}

/**
 * The status of an encoded `CommandResponse`, read without decoding the rest of it; 0 when
 * absent or unreadable (which the generator counts as an error).
 */
export function responseStatus(payload: Buffer): number {
  let pos = 0;
  const end = payload.length;
  while (pos < end) {
    let tag = 0;
    let shift = 0;
    let byte: number;
    do {
      if (pos >= end || shift > 28) return 0;
      byte = payload[pos++];
      tag |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    const wireType = tag & 7;
    if (tag >>> 3 === 1 && wireType === 0) {
      let status = 0;
      shift = 0;
      do {
        if (pos >= end || shift > 28) return 0;
        byte = payload[pos++];
        status |= (byte & 0x7f) << shift;
        shift += 7;
      } while (byte & 0x80);
      return status >>> 0;
    }
    switch (wireType) {
      case 0:
        while (pos < end && payload[pos++] & 0x80);
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        let len = 0;
        shift = 0;
        do {
          if (pos >= end || shift > 28) return 0;
          byte = payload[pos++];
          len |= (byte & 0x7f) << shift;
          shift += 7;
        } while (byte & 0x80);
        pos += len >>> 0;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        return 0;
    }
  }
  return 0;
}
