/**
 * What every RESP command can reach: the service (and through it the store and pub/sub), the
 * listener's clients, settings, statistics and scan cursors. One per RESP listener.
 */
import type { Logger, RateLimitedLog } from '../logger.js';
import type { InputBudget } from '../transport/input-budget.js';
import type { Service } from '../service/service.js';
import type { ClientState } from './client.js';
import type { CommandTable } from './commands/table.js';
import type { RedisConfig } from './redis-config.js';
import type { RespStats } from './stats.js';
import type { ScanCursors } from './cursors.js';

/** Limits a RESP client is held to. */
export interface RespLimits {
  /** Largest bulk argument (proto-max-bulk-len) and largest reply, in bytes: the maximum frame size. */
  maxBulkLength: number;
  /** Largest request, all arguments together, in bytes. */
  maxRequestBytes: number;
  /** Most keys (or fields, or pairs) one command may name. */
  maxKeysPerCommand: number;
  /** Most replies waiting for the store before the connection stops reading. */
  maxPendingResponses: number;
  /** Bytes of unsent output past which a connection stops reading (and executing) until it drains. */
  maxOutputBuffer: number;
  /** A request in progress must complete within this many ms of its first byte (plus 1 s per MiB); 0: never. */
  frameTimeoutMs: number;
  subscriberBacklogMessages: number;
  subscriberBacklogBytes: number;
  maxConnections: number;
  /** 0: never. */
  idleTimeoutMs: number;
}

/** Rate-limited logs of events a client can cause at will. */
export interface RespLogs {
  readonly protocolErrors: RateLimitedLog;
  readonly requestTimeouts: RateLimitedLog;
  readonly slowSubscribers: RateLimitedLog;
  readonly refusedConnections: RateLimitedLog;
  readonly crossProtocol: RateLimitedLog;
}

export interface RespContext {
  readonly service: Service;
  /** Caps the input all connections (of both listeners, when shared) hold at once. */
  readonly inputBudget: InputBudget;
  /** What clients can make happen often is logged at a bounded rate. */
  readonly logs: RespLogs;
  readonly logger: Logger;
  readonly limits: RespLimits;
  readonly commands: CommandTable;
  readonly config: RedisConfig;
  readonly stats: RespStats;
  readonly cursors: ScanCursors;
  /** Connected clients, oldest first. */
  readonly clients: ReadonlyMap<number, ClientState>;
  /** When the listener started (ms since the epoch). */
  readonly startedAt: number;
  /** The RESP listener's port. */
  readonly port: number;
  /** Which store backs the service, for INFO (`memory`, `lmdb`, …). */
  readonly storeKind: string;
}
