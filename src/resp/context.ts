/**
 * What every RESP command can reach: the service (and through it the store and pub/sub), the
 * listener's clients, settings, statistics and scan cursors. One per RESP listener.
 */
import type { Logger } from '../logger.js';
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
  maxOutputBytes: number;
  subscriberBacklogMessages: number;
  subscriberBacklogBytes: number;
  maxConnections: number;
  /** 0: never. */
  idleTimeoutMs: number;
}

export interface RespContext {
  readonly service: Service;
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
