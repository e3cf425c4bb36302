/**
 * The four hook points every request passes through (SPEC 3), in order:
 * `onRequestReceived` → execute → `onRequestExecuted` → `beforeResponseSend` → send →
 * `afterResponseSend`.
 *
 * Hooks are synchronous so a request on a synchronous store never waits on a promise. A hook
 * that throws is logged and skipped; it never fails the request or the server.
 */
import type { CommandRequest, CommandResponse } from '../protocol/generated/abi.js';

export interface HookSignatures {
  /** Sees each request as it arrives, before it runs. */
  onRequestReceived: (request: CommandRequest) => void;
  /** Sees each response right after the command ran. */
  onRequestExecuted: (response: CommandResponse, request: CommandRequest) => void;
  /** May change the response: mutate it, or return a replacement. */
  beforeResponseSend: (response: CommandResponse) => CommandResponse | void;
  /** Runs once the response has been handed to the operating system. */
  afterResponseSend: (response: CommandResponse) => void;
}

export type HookName = keyof HookSignatures;

/** The hook names, in lifecycle order. */
export const HOOK_NAMES: readonly HookName[] = [
  'onRequestReceived',
  'onRequestExecuted',
  'beforeResponseSend',
  'afterResponseSend',
];

/**
 * Registered hooks, one list per point. A point with no hooks is `null`, so the hot path pays a
 * single null check for it.
 */
export class Hooks {
  onRequestReceived: HookSignatures['onRequestReceived'][] | null = null;
  onRequestExecuted: HookSignatures['onRequestExecuted'][] | null = null;
  beforeResponseSend: HookSignatures['beforeResponseSend'][] | null = null;
  afterResponseSend: HookSignatures['afterResponseSend'][] | null = null;

  add<N extends HookName>(name: N, fn: HookSignatures[N]): void {
    if (!HOOK_NAMES.includes(name)) {
      throw new TypeError(`unknown hook "${String(name)}"; hooks are ${HOOK_NAMES.join(', ')}`);
    }
    if (typeof fn !== 'function') throw new TypeError(`hook ${name} must be a function`);
    const list = (this[name] ?? []) as HookSignatures[N][];
    list.push(fn);
    (this as Record<HookName, unknown>)[name] = list;
  }
}
