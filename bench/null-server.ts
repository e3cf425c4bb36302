/**
 * A server that does nothing: it answers every frame it receives with the same pre-encoded
 * `200` response, without decoding anything. Benchmarking it shows how fast the load generator
 * itself can go, i.e. the ceiling above which `protokv bench` numbers would measure the
 * generator rather than the server.
 *
 * Run alone: `node dist/bench/null-server.js [PORT]` prints `{"msg":"listening","address":…}`.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { encodeFrame } from '../src/codec/frame.js';
import { encodeResponse } from '../src/protocol/wire.js';
import { ok } from '../src/protocol/requests.js';

const RESPONSE = encodeFrame(encodeResponse(ok()));
/** Responses written at once are slices of this. */
const REPLIES = Buffer.concat(Array.from({ length: 4096 }, () => RESPONSE));
const MAX_BATCH = REPLIES.length / RESPONSE.length;

/** Counts complete frames in a byte stream by their headers alone. */
class FrameCounter {
  /** Bytes of the current frame's payload still to skip. */
  #skip = 0;
  readonly #header = Buffer.alloc(4);
  #headerFill = 0;

  /** Returns how many frames were completed by `chunk`. */
  push(chunk: Buffer): number {
    let frames = 0;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - pos);
        this.#skip -= n;
        pos += n;
        if (this.#skip === 0) frames++;
        continue;
      }
      if (this.#headerFill === 0 && chunk.length - pos >= 4) {
        this.#skip = chunk.readUInt32BE(pos) & 0x7fff_ffff;
        pos += 4;
      } else {
        this.#header[this.#headerFill++] = chunk[pos++];
        if (this.#headerFill < 4) continue;
        this.#headerFill = 0;
        this.#skip = this.#header.readUInt32BE(0) & 0x7fff_ffff;
      }
      if (this.#skip === 0) frames++;
    }
    return frames;
  }
}

/** A running null server. */
export interface NullServer {
  port: number;
  close(): Promise<void>;
}

/** Starts a null server on 127.0.0.1 (`port` 0 lets the OS pick). */
export async function startNullServer(port = 0): Promise<NullServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    const counter = new FrameCounter();
    socket.on('data', (chunk: Buffer) => {
      let n = counter.push(chunk);
      while (n > 0) {
        const batch = Math.min(n, MAX_BATCH);
        socket.write(batch === 1 ? RESPONSE : REPLIES.subarray(0, batch * RESPONSE.length));
        n -= batch;
      }
    });
    socket.on('error', () => {});
    socket.on('end', () => socket.end());
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const server = await startNullServer(Number(process.argv[2] ?? 0));
  process.stdout.write(`${JSON.stringify({ msg: 'listening', address: `127.0.0.1:${server.port}`, pid: process.pid })}\n`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
