/**
 * Hostile yamux peers and noisy refusals: a refusal over the connection limit is spoken in yamux,
 * stream ids cannot be reused, a peer cannot open streams after its own go-away, and refused
 * TLS handshakes cannot flood the log.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { ProtokvError } from '../src/client/errors.js';
import { encodeFrame } from '../src/codec/frame.js';
import { requests } from '../src/protocol/requests.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { RateLimitedLog } from '../src/logger.js';
import { encodeHeader, Flag, FrameParser, FrameType, GoAwayCode, type FrameHeader } from '../src/transport/yamux/frame.js';
import { capturingLogger } from './helpers/logs.js';
import { startServer } from './helpers/server.js';
import { startMtlsServer } from './helpers/transports.js';
import { until } from './helpers/wait.js';

describe('refusals over yamux are yamux', () => {
  for (const [name, start] of Object.entries({ TCP: startServer, 'mutual TLS': startMtlsServer })) {
    test(`${name}: a yamux client over the connection limit reads a 503 on its stream, not garbage`, async () => {
      const running = await start({ mux: 'yamux', maxConnections: 1 }, { mux: 'yamux' });
      try {
        const first = await running.client();
        await until(() => running.server.connectionCount === 1, 'the first connection');
        const second = await running.client();
        await assert.rejects(
          second.hexist('t', 'k'),
          (e: unknown) => e instanceof ProtokvError && e.status === 503 && /too many connections \(maximum 1\)/.test(e.message),
        );
        assert.equal(await first.hexist('t', 'k'), false, 'the connection that got in is unaffected');
        await first.close();
        second.close().catch(() => {});
      } finally {
        await running.close();
      }
    });
  }
});

/** A yamux peer written by hand, to send what a well-behaved session never would. */
class HandPeer {
  readonly frames: FrameHeader[] = [];
  readonly socket: net.Socket;
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    const parser = new FrameParser({ onHeader: (h) => this.frames.push({ ...h }), onPayload: () => {}, onFrameEnd: () => {} });
    socket.on('data', (d: Buffer) => parser.push(d));
    socket.on('error', () => {});
    socket.on('close', () => (this.closed = true));
  }

  static async connect(port: number): Promise<HandPeer> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new HandPeer(socket);
  }

  send(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void {
    this.socket.write(payload ? Buffer.concat([encodeHeader(type, flags, streamId, length), payload]) : encodeHeader(type, flags, streamId, length));
  }

  /** Opens stream `id` with a request on it. */
  request(id: number): void {
    const frame = encodeFrame(encodeRequest(requests.hexist('t', 'k')));
    this.send(FrameType.Data, Flag.SYN, id, frame.length, frame);
  }

  async waitFor(what: string, match: (f: FrameHeader) => boolean): Promise<FrameHeader> {
    await until(() => this.frames.some(match), what);
    return this.frames.find(match)!;
  }
}

describe('yamux stream ids and go-away', () => {
  test('reopening a finished stream id is a protocol error: go-away, and the connection ends', async () => {
    const running = await startServer({ mux: 'yamux' });
    const peer = await HandPeer.connect(running.port);
    try {
      peer.request(1);
      await peer.waitFor('the answer on stream 1', (f) => f.streamId === 1 && f.type === FrameType.Data);
      peer.send(FrameType.WindowUpdate, Flag.FIN, 1, 0);
      await peer.waitFor("the server's FIN on stream 1", (f) => f.streamId === 1 && (f.flags & Flag.FIN) !== 0);
      peer.frames.length = 0;
      peer.request(1);
      const goAway = await peer.waitFor('go-away', (f) => f.type === FrameType.GoAway);
      assert.equal(goAway.length, GoAwayCode.ProtocolError);
      assert.ok(!peer.frames.some((f) => f.type === FrameType.Data), 'the reused stream is not served');
      await until(() => peer.closed, 'the connection to end');
    } finally {
      peer.socket.destroy();
      await running.close();
    }
  });

  test('stream ids must increase: an older id after a newer one is refused the same way', async () => {
    const running = await startServer({ mux: 'yamux' });
    const peer = await HandPeer.connect(running.port);
    try {
      peer.request(5);
      await peer.waitFor('the answer on stream 5', (f) => f.streamId === 5 && f.type === FrameType.Data);
      peer.request(3);
      const goAway = await peer.waitFor('go-away', (f) => f.type === FrameType.GoAway);
      assert.equal(goAway.length, GoAwayCode.ProtocolError);
    } finally {
      peer.socket.destroy();
      await running.close();
    }
  });

  test('a peer that sent go-away cannot open streams: they are refused with RST, open ones carry on', async () => {
    const running = await startServer({ mux: 'yamux' });
    const peer = await HandPeer.connect(running.port);
    try {
      peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
      await peer.waitFor('stream 1 accepted', (f) => f.streamId === 1 && (f.flags & Flag.ACK) !== 0);
      peer.send(FrameType.GoAway, 0, 0, GoAwayCode.Normal);
      peer.request(3);
      await peer.waitFor('stream 3 refused', (f) => f.streamId === 3 && (f.flags & Flag.RST) !== 0);
      const frame = encodeFrame(encodeRequest(requests.hexist('t', 'k')));
      peer.send(FrameType.Data, 0, 1, frame.length, frame);
      await peer.waitFor('the answer on stream 1', (f) => f.streamId === 1 && f.type === FrameType.Data);
      assert.ok(!peer.frames.some((f) => f.streamId === 3 && f.type === FrameType.Data));
    } finally {
      peer.socket.destroy();
      await running.close();
    }
  });

  test('a yamux frame dripped a byte at a time ends the session', async () => {
    const running = await startServer({ mux: 'yamux', frameTimeoutMs: 300 });
    const peer = await HandPeer.connect(running.port);
    try {
      const header = encodeHeader(FrameType.WindowUpdate, Flag.SYN, 1, 0);
      let at = 0;
      const timer = setInterval(() => {
        if (at < header.length) peer.socket.write(header.subarray(at, ++at));
      }, 100);
      try {
        const goAway = await peer.waitFor('go-away', (f) => f.type === FrameType.GoAway);
        assert.equal(goAway.length, GoAwayCode.ProtocolError);
        await until(() => peer.closed, 'the connection to end');
      } finally {
        clearInterval(timer);
      }
    } finally {
      peer.socket.destroy();
      await running.close();
    }
  });
});

describe('rate-limited logs', () => {
  test('the first events of an interval are logged one by one, the rest summed up in one line', () => {
    const { logger, lines } = capturingLogger();
    const log = new RateLimitedLog(logger, 'info', 'something refused', { burst: 3, intervalMs: 60_000 });
    for (let i = 0; i < 10; i++) log.log({ n: i });
    assert.deepEqual(
      lines.map((l) => l.n),
      [0, 1, 2],
    );
    log.flush();
    assert.equal(lines.length, 4);
    assert.equal(lines[3]!.msg, 'something refused (7 more not logged one by one)');
    assert.equal(lines[3]!.suppressed, 7);
    log.flush();
    assert.equal(lines.length, 4, 'nothing more to report');
  });

  test('a flood of refused TLS handshakes writes a handful of lines, not one each', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startMtlsServer({ service: new Service({ store: new MemoryStore(), logger }) });
    const attempts = 60;
    try {
      await Promise.all(
        Array.from({ length: attempts }, async () => {
          const s = net.connect({ host: '127.0.0.1', port: running.port });
          s.on('error', () => {});
          await once(s, 'connect');
          s.write('GET / HTTP/1.0\r\n\r\n');
          await once(s, 'close');
        }),
      );
    } finally {
      await running.close();
    }
    const refused = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('TLS handshake refused'));
    const counted = refused.reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 1), 0);
    assert.equal(counted, attempts, 'every refusal is accounted for');
    assert.ok(refused.length <= 25, `${refused.length} lines for ${attempts} refusals`);
  });
});
