/** Reading subscriptions in tests. */
import type { KvValue } from '../../src/protocol/values.js';

/** Collects what a subscription yields, and how its loop ended: `undefined` when normally, else the error. */
export function drain(sub: AsyncIterable<KvValue[]>): { messages: KvValue[][]; ended: Promise<Error | undefined> } {
  const messages: KvValue[][] = [];
  const ended = (async () => {
    try {
      for await (const m of sub) messages.push(m);
      return undefined;
    } catch (err) {
      return err as Error;
    }
  })();
  return { messages, ended };
}
