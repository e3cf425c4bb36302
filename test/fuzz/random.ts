/**
 * A small seeded random source for the socket fuzzer: fast enough to drive millions of frames,
 * and reproducible from one number so a failing run can be replayed with `--seed`.
 */
export class Rand {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0 || 0x9e37_79b9;
  }

  /** A uniform float in [0, 1) (mulberry32). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b_79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let total = 0;
    for (const [, w] of entries) total += w;
    let r = this.next() * total;
    for (const [k, w] of entries) {
      r -= w;
      if (r < 0) return k;
    }
    return entries[entries.length - 1][0];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  /** Sizes skewed towards small ones, as real traffic and interesting edge cases both are. */
  size(max: number): number {
    const r = this.next();
    if (r < 0.5) return this.int(Math.min(max, 32) + 1);
    if (r < 0.85) return this.int(Math.min(max, 512) + 1);
    return this.int(max + 1);
  }
}
