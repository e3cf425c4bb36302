/**
 * Forks server-child.js and talks to it: its port, its memory and connection count on demand,
 * a graceful close. A crash of the child rejects every pending call with its stderr, so a server
 * that died under fuzzing is reported as such rather than as a hang.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { StreamLimits } from '../../src/transport/stream-server.js';

/** The JSON-serializable subset of `ServerOptions` the child accepts. */
export interface ServerChildOptions extends StreamLimits {
  maxConnections?: number;
  idleTimeoutMs?: number;
  shutdownTimeoutMs?: number;
}

export interface ServerStats {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  connections: number;
  subscriptions: number;
  /** Keys held by the store. */
  storedEntries: number;
  /** Whether a full garbage collection ran just before measuring. */
  gc: boolean;
}

export type ChildRequest = { type: 'stats'; id: number; gc: boolean; reset: boolean } | { type: 'close' };
export type ChildReply =
  | { type: 'listening'; port: number }
  | { type: 'stats'; id: number; stats: ServerStats }
  | { type: 'closed' };

export interface ServerChild {
  port: number;
  pid: number;
  /** Memory and connections now; with `gc`, after a full collection; with `reset`, after removing every stored key. */
  stats(options?: { gc?: boolean; reset?: boolean }): Promise<ServerStats>;
  /**
   * Polls until the server counts `target` connections (default 0), for at most `limitMs`; returns
   * the last count. Either side of a connection learns of it before the other, so counts lag a little.
   */
  connectionsSettle(limitMs?: number, target?: number): Promise<number>;
  /** Graceful shutdown, then the process exits. */
  close(): Promise<void>;
  /** Everything the child wrote to stderr so far. */
  stderr(): string;
}

const CHILD = fileURLToPath(new URL('./server-child.js', import.meta.url));

export async function forkServer(options: ServerChildOptions = {}): Promise<ServerChild> {
  const child: ChildProcess = fork(CHILD, [JSON.stringify(options)], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
  });
  const waiters = new Map<number, { resolve: (s: ServerStats) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let exitError: Error | undefined;
  let onClosed: (() => void) | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitError = new Error(`the server process exited (code ${code}, signal ${signal}): ${stderr.trim() || 'no stderr'}`);
      for (const w of waiters.values()) w.reject(exitError);
      waiters.clear();
      resolve();
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    void exited.then(() => reject(exitError ?? new Error('the server process exited')));
    child.on('message', (reply: ChildReply) => {
      if (reply.type === 'listening') resolve(reply.port);
      else if (reply.type === 'stats') {
        waiters.get(reply.id)?.resolve(reply.stats);
        waiters.delete(reply.id);
      } else onClosed?.();
    });
  });

  const stats = ({ gc = false, reset = false } = {}): Promise<ServerStats> => {
    if (exitError !== undefined) return Promise.reject(exitError);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      waiters.set(id, { resolve, reject });
      child.send({ type: 'stats', id, gc, reset } satisfies ChildRequest);
    });
  };

  return {
    port,
    pid: child.pid ?? 0,
    stats,
    async connectionsSettle(limitMs = 10_000, target = 0) {
      const deadline = Date.now() + limitMs;
      let count = (await stats()).connections;
      while (count !== target && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
        count = (await stats()).connections;
      }
      return count;
    },
    async close() {
      if (exitError !== undefined) return;
      const closed = new Promise<void>((resolve) => (onClosed = resolve));
      child.send({ type: 'close' } satisfies ChildRequest);
      await Promise.race([closed, exited]);
      // A graceful close that did not end the process within its own timeout is ended for it.
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
    stderr: () => stderr,
  };
}
