/**
 * A minimal typed event emitter that runs anywhere (no `node:events`). Unlike Node's, an `error`
 * event with no listener is dropped rather than thrown: background reconnect failures must never
 * crash an application that did not ask to hear about them.
 */

type Listener<A extends unknown[]> = (...args: A) => void;
type AnyListener = (...args: unknown[]) => void;

/** Emits the events of map `E` (event name → argument tuple). */
export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  readonly #listeners = new Map<keyof E, AnyListener[]>();

  /** Calls `listener` on every `event`. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener as unknown as AnyListener);
    this.#listeners.set(event, list);
    return this;
  }

  /** Calls `listener` on the next `event` only. */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const wrapper: Listener<E[K]> = (...args) => {
      this.off(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  /** Removes `listener`. */
  off<K extends keyof E>(event: K, listener: Listener<E[K]>): this {
    const list = this.#listeners.get(event);
    const i = list?.indexOf(listener as unknown as AnyListener) ?? -1;
    if (i >= 0) list!.splice(i, 1);
    return this;
  }

  /** Number of listeners of `event`. */
  listenerCount(event: keyof E): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const list = this.#listeners.get(event);
    if (list === undefined) return;
    // A listener that throws must not stop the client's own bookkeeping: report it asynchronously.
    for (const listener of [...list]) {
      try {
        (listener as unknown as Listener<E[K]>)(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
