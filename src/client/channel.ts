/**
 * A request/response channel over any Node duplex already carrying frames (a socket, a yamux
 * stream), for tools that manage their own streams — the load generator, tests. It is the
 * client core's `FrameChannel` with the Node stream adapter; no reconnects, no timeouts.
 */
import type { Duplex } from 'node:stream';
import { CommandRequest, type CommandResponse } from '../protocol/generated/abi.js';
import { DEFAULT_MAX_FRAME_SIZE } from '../codec/frame-format.js';
import { FrameChannel } from './core/channel.js';
import { nodeCompression } from './node/compression.js';
import { duplexStream } from './node/socket-transport.js';

export class Channel {
  readonly stream: Duplex;
  /** Resolves once the stream has closed; never rejects. */
  readonly closed: Promise<void>;
  /** Receives responses nobody asked for (subscription messages). */
  onUnsolicited: ((response: CommandResponse) => void) | undefined;
  readonly #channel: FrameChannel;

  constructor(stream: Duplex, maxFrameSize = DEFAULT_MAX_FRAME_SIZE) {
    this.stream = stream;
    this.#channel = new FrameChannel('the server', maxFrameSize, nodeCompression, {
      onMessage: (response) => this.onUnsolicited?.(response),
    });
    this.#channel.attach(duplexStream(stream, this.#channel, 'the server', { usingTls: false }));
    this.closed = this.#channel.closed;
  }

  /** Number of requests awaiting their response. */
  get inFlight(): number {
    return this.#channel.inFlight;
  }

  /** Sends a request; resolves with its response (whatever its status). */
  request(request: CommandRequest): Promise<CommandResponse> {
    return new Promise((resolve, reject) =>
      this.#channel.request(CommandRequest.encode(request).finish(), { done: false, resolve, reject }),
    );
  }

  /** Ends our side of the stream; pending requests still get their answers. */
  end(): void {
    this.#channel.end();
  }

  destroy(err?: Error): void {
    this.#channel.destroy(err);
  }
}
