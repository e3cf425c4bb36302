/**
 * Redis's glob-style patterns (KEYS, SCAN/HSCAN MATCH, PSUBSCRIBE, PUBSUB CHANNELS, CONFIG GET),
 * matched on bytes as Redis does: `*` any run, `?` any one byte, `[abc]`, `[^abc]`, `[a-z]`
 * classes, `\x` a literal x. An unterminated class ends at the end of the pattern; a trailing
 * backslash is a literal backslash.
 *
 * Matching keeps one backtrack point (the last `*`), so it takes at most
 * O(pattern × subject) steps whatever the pattern: no exponential blow-up.
 */

/** A compiled pattern: one matcher per position. */
type Element = { kind: 'star' } | { kind: 'any' } | { kind: 'byte'; byte: number } | { kind: 'class'; negate: boolean; ranges: number[] };

export class Glob {
  readonly #elements: Element[];
  readonly #nocase: boolean;
  /** True for `*`: matches everything, so callers can skip matching. */
  readonly matchesAll: boolean;

  constructor(pattern: Uint8Array, nocase = false) {
    this.#nocase = nocase;
    this.#elements = compile(pattern, nocase);
    this.matchesAll = this.#elements.length > 0 && this.#elements.every((e) => e.kind === 'star');
  }

  /** Whether `subject` matches. */
  test(subject: Uint8Array): boolean {
    if (this.matchesAll) return true;
    const els = this.#elements;
    const nocase = this.#nocase;
    let p = 0;
    let s = 0;
    let starP = -1;
    let starS = 0;
    while (s < subject.length) {
      if (p < els.length) {
        const el = els[p];
        if (el.kind === 'star') {
          starP = p++;
          starS = s;
          continue;
        }
        if (matchOne(el, nocase ? lower(subject[s]) : subject[s])) {
          p++;
          s++;
          continue;
        }
      }
      if (starP < 0) return false;
      p = starP + 1;
      s = ++starS;
    }
    while (p < els.length && els[p].kind === 'star') p++;
    return p === els.length;
  }
}

function lower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

function matchOne(el: Element, c: number): boolean {
  switch (el.kind) {
    case 'any':
      return true;
    case 'byte':
      return el.byte === c;
    case 'class': {
      let hit = false;
      const r = el.ranges;
      for (let i = 0; i < r.length; i += 2) {
        if (c >= r[i] && c <= r[i + 1]) {
          hit = true;
          break;
        }
      }
      return hit !== el.negate;
    }
    case 'star':
      return true;
  }
}

function compile(pattern: Uint8Array, nocase: boolean): Element[] {
  const out: Element[] = [];
  const fold = (c: number): number => (nocase ? lower(c) : c);
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = pattern[i];
    if (c === 0x2a /* * */) {
      if (out.length === 0 || out[out.length - 1].kind !== 'star') out.push({ kind: 'star' });
      i++;
    } else if (c === 0x3f /* ? */) {
      out.push({ kind: 'any' });
      i++;
    } else if (c === 0x5b /* [ */) {
      i++;
      const negate = i < n && pattern[i] === 0x5e; /* ^ */
      if (negate) i++;
      const ranges: number[] = [];
      while (i < n && pattern[i] !== 0x5d /* ] */) {
        if (pattern[i] === 0x5c /* \ */ && i + 1 < n) {
          i++;
          const lit = fold(pattern[i]);
          ranges.push(lit, lit);
          i++;
        } else if (i + 2 < n && pattern[i + 1] === 0x2d /* - */) {
          let a = fold(pattern[i]);
          let b = fold(pattern[i + 2]);
          if (a > b) [a, b] = [b, a];
          ranges.push(a, b);
          i += 3;
        } else {
          const lit = fold(pattern[i]);
          ranges.push(lit, lit);
          i++;
        }
      }
      if (i < n) i++; // the closing ]
      out.push({ kind: 'class', negate, ranges });
    } else if (c === 0x5c /* \ */ && i + 1 < n) {
      out.push({ kind: 'byte', byte: fold(pattern[i + 1]) });
      i += 2;
    } else {
      out.push({ kind: 'byte', byte: fold(c) });
      i++;
    }
  }
  return out;
}
