/** Polls `cond` until it holds; fails naming `what` after `ms`. For state that has no event to await. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Waits until `count()` is above zero and the same on two polls `gapMs` apart — work that has
 * stopped, e.g. requests executed for a client that reads nothing; fails naming `what` after `ms`.
 */
export async function untilSettled(count: () => number, what: string, ms = 5000, gapMs = 300): Promise<number> {
  const end = Date.now() + ms;
  let last = -1;
  for (;;) {
    const now = count();
    if (now > 0 && now === last) return now;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (still changing: ${now})`);
    last = now;
    await new Promise((r) => setTimeout(r, gapMs));
  }
}
