/**
 * A RESP client as commands see it: the per-connection state Redis keeps for a client (id, name,
 * protocol version, reply mode, subscriptions) and what CLIENT LIST reports about it. The
 * connection (connection.ts) implements it; commands never touch the socket.
 */
import type { CommandContext } from '../service/commands.js';
import type { ReplyWriter } from './reply.js';
import type { RespSubscription } from './pubsub.js';

/** CLIENT REPLY modes. */
export type ReplyMode = 'on' | 'off' | 'skip';

export interface ClientState {
  readonly id: number;
  /** CLIENT SETNAME; `undefined` when unset. */
  name: Buffer | undefined;
  /** RESP version, 2 until HELLO 3. */
  protocol: 2 | 3;
  replyMode: ReplyMode;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  lastInteraction: number;
  /** Full name of the last command run (`client|list`), for CLIENT LIST. */
  lastCommand: string;
  /** `ip:port` of the peer and of our end. */
  readonly remoteAddress: string;
  readonly localAddress: string;
  /** Channel subscriptions by channel name, and pattern subscriptions by pattern. */
  readonly channels: Map<string, RespSubscription>;
  readonly patterns: Map<string, RespSubscription>;
  /** Service context for this client's requests (transport `resp`). */
  readonly context: CommandContext;
  /** Whether this client was marked to close once its pending replies are written. */
  readonly closing: boolean;

  /** Closes the connection once the replies written so far are sent (QUIT, CLIENT KILL of oneself). */
  closeAfterReply(): void;
  /** Closes the connection now (CLIENT KILL of another client). */
  kill(): void;
  /**
   * Queues an out-of-band message (a pub/sub message or notice) behind the replies already
   * queued. Over the subscriber backlog the client is disconnected instead.
   */
  deliver(message: Buffer | ((out: ReplyWriter) => void)): void;
  /**
   * Runs none of this client's later commands until `until` settles: a read-modify-write whose
   * write waits on an asynchronous read holds the connection, so the commands after it see its
   * write (read your writes) as they would on a synchronous store.
   */
  hold(until: Promise<unknown>): void;
  /** The CLIENT LIST / CLIENT INFO line, without the trailing newline. */
  describe(): string;
}
