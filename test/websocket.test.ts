/** `GET /ws` (SPEC §6): message framing, close codes, the Origin check, back-pressure and shutdown. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type WebSocket from 'ws';
import { encodeFrame } from '../src/codec/frame.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue, type KvValue } from '../src/protocol/values.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { MemoryStore } from '../src/storage/memory.js';
import { Service } from '../src/service/service.js';
import type { BenchReport } from '../src/bench/report.js';
import { benchCommand } from '../src/cli/bench.js';
import { originRefusal } from '../src/transport/websocket.js';
import { FrameSplitter } from '../src/transport/websocket-stream.js';
import { capturingLogger } from './helpers/logs.js';
import { frameHeader } from './helpers/server.js';
import { until, untilSettled } from './helpers/wait.js';
import { clientFrameHeader, openWebSocket, rawWebSocket, RawWebSocketPeer, startWebSocketServer, type WebSocketRunning } from './helpers/websocket.js';

const MAX_FRAME = 64 * 1024;

describe('WebSocket messages and close codes', () => {
  let running: WebSocketRunning;
  before(async () => {
    running = await startWebSocketServer({ server: { maxFrameSize: MAX_FRAME }, endpoint: { maxFrameSize: MAX_FRAME } });
  });
  after(() => running.close());

  test('each request is one message and each response comes back as one message holding one frame', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    for (let i = 0; i < 200; i++) peer.send(requests.hset('t', `k${i}`, BigInt(i)));
    for (let i = 0; i < 200; i++) peer.send(requests.hget('t', `k${i}`));
    const answers = await peer.responses(400);
    assert.ok(answers.slice(0, 200).every((r) => r.status === 200 && fromValue(r.values[0]) === null));
    assert.deepEqual(
      answers.slice(200).map((r) => fromValue(r.values[0])),
      Array.from({ length: 200 }, (_, i) => BigInt(i)),
    );
    assert.equal(peer.messages.length, 400);
    peer.ws.close();
  });

  test('a text message closes the connection with 1003', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    peer.ws.send('HGET t k');
    const { code, reason } = await peer.closed();
    assert.equal(code, 1003);
    assert.match(reason, /binary messages only/);
  });

  test('a message over the maximum frame size closes the connection with 1009', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    const payload = randomBytes(MAX_FRAME + 1);
    peer.ws.send(Buffer.concat([frameHeader(payload.length), payload]));
    assert.equal((await peer.closed()).code, 1009);
  });

  test('a frame of exactly the maximum size is served', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    const pad = MAX_FRAME - 40;
    const value = Buffer.alloc(pad, 7);
    // Compressible, so the request travels as a small gzip frame and the response too; then once raw at the maximum.
    peer.send(requests.hset('max', 'v', value));
    const [set] = await peer.responses(1);
    assert.equal(set.status, 200);
    const raw = encodeRequest(requests.hset('max', 'r', Buffer.alloc(0)));
    const body = Buffer.concat([Buffer.from(raw), Buffer.alloc(MAX_FRAME - raw.length)]);
    // Trailing zero bytes are field 0 tags: not valid protobuf, so a 400 — but read whole, not 1009.
    peer.ws.send(Buffer.concat([frameHeader(body.length), body]));
    const [r] = await peer.responses(1);
    assert.equal(r.status, 400);
    assert.equal(peer.closeStatus, undefined);
    peer.ws.close();
  });

  test('a message that is not exactly one frame closes the connection with 1002', async () => {
    const two = Buffer.concat([encodeFrame(encodeRequest(requests.hget('t', 'a'))), encodeFrame(encodeRequest(requests.hget('t', 'b')))]);
    const whole = encodeFrame(encodeRequest(requests.hget('t', 'a')));
    for (const message of [two, whole.subarray(0, whole.length - 1), Buffer.from([0, 0]), Buffer.alloc(0)]) {
      const peer = await RawWebSocketPeer.open(running.url);
      peer.ws.send(message);
      const { code, reason } = await peer.closed();
      assert.equal(code, 1002, `${message.length} bytes`);
      assert.match(reason, /exactly one frame/);
    }
  });

  test('malformed protobuf and gzip are a 400 and the connection stays usable, as on TCP', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    peer.ws.send(Buffer.concat([frameHeader(3), Buffer.from([0xff, 0xff, 0xff])]));
    peer.ws.send(Buffer.concat([frameHeader(4, true), Buffer.from('nope')]));
    peer.ws.send(Buffer.concat([frameHeader(0)]));
    peer.send(requests.hexist('t', 'k0'));
    const [a, b, c, d] = await peer.responses(4);
    assert.equal(a.status, 400);
    assert.equal(b.status, 400);
    assert.match(b.message, /gzip/);
    assert.equal(c.status, 400);
    assert.equal(d.status, 200);
    peer.ws.close();
  });

  test('a gzip frame inflating past the maximum is a 413, then the connection closes', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    const { gzipSync } = await import('node:zlib');
    const bomb = gzipSync(Buffer.alloc(MAX_FRAME * 4));
    peer.ws.send(Buffer.concat([frameHeader(bomb.length, true), bomb]));
    const [r] = await peer.responses(1);
    assert.equal(r.status, 413);
    assert.equal((await peer.closed()).code, 1000);
  });

  test('anything sent on a subscription stream is a 400 and ends it with a normal close', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    peer.send(requests.subscribe('ws-strict'));
    const [first] = await peer.responses(1);
    assert.equal(first.values[0]?.value?.$case, 'integer');
    peer.send(requests.hget('t', 'k'));
    const [r] = await peer.responses(1);
    assert.equal(r.status, 400);
    assert.match(r.message, /subscription stream/);
    assert.equal((await peer.closed()).code, 1000);
    await until(() => running.service.pubsub.size === 0, 'the subscription to be forgotten');
  });

  test('a subscriber that closes its WebSocket is forgotten at once', async () => {
    const peer = await RawWebSocketPeer.open(running.url);
    peer.send(requests.subscribe('ws-abrupt'));
    await peer.responses(1);
    assert.equal(running.service.pubsub.size, 1);
    peer.ws.terminate();
    await until(() => running.service.pubsub.size === 0, 'the subscription to be dropped');
  });

  test('an upgrade on another path is a 404; a query string does not change the path', async () => {
    for (const other of ['/other', '/ws/', '/']) {
      await assert.rejects(openWebSocket(running.url.replace(/\/ws$/, other)), (e: Error & { statusCode?: number }) => e.statusCode === 404, other);
    }
    (await openWebSocket(`${running.url}?from=test`)).close();
  });
});

describe('the Origin check', () => {
  let running: WebSocketRunning;
  before(async () => {
    running = await startWebSocketServer({ endpoint: { allowedOrigins: ['https://admin.example.com'] } });
  });
  after(() => running.close());

  async function tryOpen(options: WebSocket.ClientOptions): Promise<number> {
    try {
      const ws = await openWebSocket(running.url, options);
      ws.close();
      return 101;
    } catch (err) {
      return (err as { statusCode?: number }).statusCode ?? -1;
    }
  }

  test("the console's own origin, a listed origin and no Origin at all are accepted", async () => {
    assert.equal(await tryOpen({ origin: running.origin }), 101);
    assert.equal(await tryOpen({ origin: 'https://admin.example.com' }), 101);
    assert.equal(await tryOpen({}), 101);
    const port = new URL(running.url).port;
    assert.equal(await tryOpen({ origin: `http://localhost:${port}`, headers: { host: `localhost:${port}` } }), 101);
  });

  test('another site is refused with 403 before the upgrade, saying why', async () => {
    await assert.rejects(openWebSocket(running.url, { origin: 'https://evil.example' }), (e: Error & { statusCode?: number; body?: string }) => {
      assert.equal(e.statusCode, 403);
      assert.match(e.body ?? '', /Origin https:\/\/evil\.example may not open \/ws/);
      return true;
    });
    for (const origin of ['null', 'http://127.0.0.1', `https://127.0.0.1:${new URL(running.url).port}`, 'http://admin.example.com']) {
      assert.equal(await tryOpen({ origin }), 403, origin);
    }
  });

  test('a page from a name that resolves to loopback (DNS rebinding) is not the console', async () => {
    const port = new URL(running.url).port;
    assert.equal(await tryOpen({ origin: `http://rebind.example:${port}`, headers: { host: `rebind.example:${port}` } }), 403);
  });

  test('the refusal is logged', async () => {
    const { logger, lines } = capturingLogger();
    const logged = await startWebSocketServer({ endpoint: { logger } });
    try {
      await assert.rejects(openWebSocket(logged.url, { origin: 'https://evil.example' }));
      assert.ok(lines.some((l) => l.msg === 'WebSocket refused: origin not allowed' && l.origin === 'https://evil.example'));
    } finally {
      await logged.close();
    }
  });

  test('originRefusal: the rule itself', () => {
    const policy = { allowedOrigins: ['https://ok.example'], secure: false, loopback: false };
    assert.equal(originRefusal(undefined, 'h:1', policy), undefined);
    assert.equal(originRefusal('http://h:1', 'h:1', policy), undefined);
    assert.equal(originRefusal('http://H:1', 'h:1', policy), undefined);
    assert.equal(originRefusal('https://ok.example', 'h:1', policy), undefined);
    assert.equal(originRefusal('http://h:80', 'h', policy), undefined);
    assert.match(originRefusal('https://h:1', 'h:1', policy) ?? '', /may not open/);
    assert.match(originRefusal('http://h:1', undefined, policy) ?? '', /may not open/);
    assert.equal(originRefusal('https://h:1', 'h:1', { ...policy, secure: true }), undefined);
    assert.match(originRefusal('http://h:1', 'h:1', { ...policy, loopback: true }) ?? '', /may not open/);
    assert.equal(originRefusal('http://[::1]:1', '[::1]:1', { ...policy, loopback: true }), undefined);
  });
});

describe('WebSocket connections under limits and shutdown', () => {
  test('a client that does not read stops the server from reading; nothing is lost when it resumes', async () => {
    const running = await startWebSocketServer();
    try {
      let executed = 0;
      running.service.addHook('onRequestReceived', () => void executed++);
      const kv = await running.client();
      const big = randomBytes(256 * 1024);
      await kv.hset('bp', 'big', big);
      const baseline = executed;
      const peer = await RawWebSocketPeer.open(running.url);
      peer.ws.pause();
      const count = 300;
      // Incompressible 48 KiB padding keys make each request large, so the client's own send
      // buffer fills once the server stops reading.
      for (let i = 0; i < count; i++) peer.send(requests.hmget('bp', ['big', randomBytes(36 * 1024).toString('base64')]));
      await until(() => peer.ws.bufferedAmount > 0 && executed > baseline, 'requests to back up in the client');
      // Settle: the server executes what it read, then stops once its output is full.
      await untilSettled(() => executed - baseline, 'the server to stop executing', 30_000);
      assert.ok(executed - baseline < count / 2, `server executed ${executed - baseline} of ${count} requests for a client that reads nothing`);
      peer.ws.resume();
      const answers = await peer.responses(count);
      assert.ok(answers.every((r) => r.status === 200 && Buffer.compare(r.values[0]!.value!.value as Buffer, big) === 0));
      assert.equal(executed - baseline, count);
      peer.ws.close();
      await kv.close();
    } finally {
      await running.close();
    }
  });

  test('the output buffer limit applies: past it nothing more is executed until the client reads', async () => {
    const running = await startWebSocketServer({ server: { maxOutputBuffer: 256 * 1024, maxFrameSize: 1024 * 1024 } });
    try {
      let executed = 0;
      running.service.addHook('onRequestReceived', () => void executed++);
      const kv = await running.tcpClient();
      await kv.hset('ob', 'big', randomBytes(64 * 1024));
      for (let i = 0; i < 10; i++) await kv.hset('ob', `i${i}`, BigInt(i));
      const peer = await RawWebSocketPeer.open(running.url);
      peer.ws.pause();
      executed = 0;
      const count = 300;
      // Small requests for big answers: the requests all fit in the socket buffers, the answers do not.
      for (let i = 0; i < count; i++) {
        peer.send(requests.hget('ob', 'big'));
        peer.send(requests.hget('ob', `i${i % 10}`));
      }
      await untilSettled(() => executed, 'the server to stop executing for the client that does not read', 30_000);
      assert.ok(executed < count, `${executed} of ${2 * count} requests executed for a client that reads nothing`);
      assert.equal(await kv.hexist('ob', 'big'), true, 'another client is served meanwhile');
      peer.ws.resume();
      const answers = await peer.responses(2 * count);
      for (let i = 0; i < count; i++) {
        assert.equal(answers[2 * i].status, 200);
        assert.equal(fromValue(answers[2 * i + 1].values[0]), BigInt(i % 10), `answer ${2 * i + 1} in order`);
      }
      peer.ws.close();
      await kv.close();
    } finally {
      await running.close();
    }
  });

  test('a subscriber that never reads is disconnected past its backlog; the others get every message', async () => {
    const running = await startWebSocketServer({ server: { subscriberBacklogMessages: 100, subscriberBacklogBytes: 1024 * 1024 } });
    try {
      const kv = await running.tcpClient();
      const stalled = await RawWebSocketPeer.open(running.url);
      stalled.send(requests.subscribe('flood'));
      await stalled.responses(1);
      stalled.ws.pause();
      const reader = await running.client();
      const good = await reader.subscribe('flood');
      const got: KvValue[][] = [];
      const reading = (async () => {
        for await (const m of good) got.push(m);
      })();
      const payload = 'p'.repeat(1000);
      let sent = 0;
      const subscribers = (): number => running.service.pubsub.size;
      assert.equal(subscribers(), 2);
      // Loopback socket buffers hold megabytes: publish until the server gives up on the stalled one (bounded).
      for (; sent < 100_000 && subscribers() === 2; sent++) await kv.publish('flood', BigInt(sent), payload);
      assert.equal(subscribers(), 1, 'the stalled subscriber was disconnected');
      stalled.ws.resume();
      await stalled.closed();
      for (let i = 0; i < 10; i++) await kv.publish('flood', BigInt(sent++), payload);
      await until(() => got.length === sent, `the WebSocket subscriber to get all ${sent} messages`, 30_000);
      assert.ok(got.every((m, i) => m[0] === BigInt(i)), 'in order, none missing');
      await good.unsubscribe();
      await reading;
      await reader.close();
      await kv.close();
    } finally {
      await running.close();
    }
  });

  test('max connections counts WebSocket connections: one more gets a 503', async () => {
    const running = await startWebSocketServer({ server: { maxConnections: 2 } });
    try {
      const a = await RawWebSocketPeer.open(running.url);
      const b = await RawWebSocketPeer.open(running.url);
      await until(() => running.server.connectionCount === 2, 'two connections');
      const c = await RawWebSocketPeer.open(running.url);
      const [refused] = await c.responses(1);
      assert.equal(refused.status, 503);
      assert.match(refused.message, /too many connections/);
      await c.closed();
      a.ws.close();
      b.ws.close();
    } finally {
      await running.close();
    }
  });

  test('idle connections are closed after the idle timeout', async () => {
    const running = await startWebSocketServer({ endpoint: { idleTimeoutMs: 100 } });
    try {
      const peer = await RawWebSocketPeer.open(running.url);
      peer.send(requests.hexist('t', 'k'));
      await peer.responses(1);
      await peer.closed();
    } finally {
      await running.close();
    }
  });

  test('shutdown answers what was received, ends subscriptions, closes with 1001 and refuses new upgrades', async () => {
    const running = await startWebSocketServer({ server: { service: new Service({ store: new MemoryStore() }) } });
    const peer = await RawWebSocketPeer.open(running.url);
    const sub = await RawWebSocketPeer.open(running.url);
    sub.send(requests.subscribe('bye'));
    await sub.responses(1);
    peer.send(requests.hset('t', 'k', 'v'));
    await peer.responses(1);
    running.endpoint.close();
    await assert.rejects(openWebSocket(running.url), (e: Error & { statusCode?: number }) => e.statusCode === 503);
    await running.close();
    assert.deepEqual(await peer.closed(), { code: 1001, reason: 'server shutting down' });
    assert.equal((await sub.closed()).code, 1001);
  });
});

describe('FrameSplitter', () => {
  test('cuts whole frames out of chunks split anywhere, joining only split frames', () => {
    const frames = [0, 1, 5, 300, 2].map((n) => Buffer.concat([frameHeader(n), randomBytes(n)]));
    const all = Buffer.concat(frames);
    for (let cut = 0; cut <= all.length; cut++) {
      for (const step of [1, 3, 7, all.length]) {
        const splitter = new FrameSplitter();
        const out: Buffer[] = [];
        splitter.push(all.subarray(0, cut), out);
        for (let i = cut; i < all.length; i += step) splitter.push(all.subarray(i, Math.min(all.length, i + step)), out);
        assert.deepEqual(out, frames, `cut ${cut} step ${step}`);
        assert.equal(splitter.bufferedBytes, 0);
      }
    }
  });

  test('a chunk of whole frames yields views of it, no copies', () => {
    const chunk = Buffer.concat([frameHeader(2), Buffer.from([1, 2]), frameHeader(1), Buffer.from([3])]);
    const out: Buffer[] = [];
    new FrameSplitter().push(chunk, out);
    assert.equal(out.length, 2);
    assert.ok(out.every((f) => f.buffer === chunk.buffer));
  });
});

describe('protokv bench --ws', () => {
  async function bench(argv: string[]): Promise<{ code: number; report: BenchReport; out: string }> {
    let out = '';
    const io = { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true, isTTY: false } };
    const code = await benchCommand([...argv, '--json'], io);
    return { code, report: JSON.parse(out.trim().split('\n').at(-1)!) as BenchReport, out };
  }

  test('HSET and pipelined HGET over WebSocket complete without errors, and reach the store', async () => {
    const running = await startWebSocketServer();
    try {
      const server = ['--ws', '--server', new URL(running.url).host];
      const set = await bench([...server, '--requests', '2000', '-c', '4', '--keyspace', '300']);
      assert.equal(set.code, 0);
      assert.equal(set.report.websocket, true);
      assert.equal(set.report.requests, 2000);
      assert.equal(set.report.errors, 0);
      const get = await bench([...server, '--command', 'hget', '--requests', '3000', '-c', '3', '-P', '16', '--keyspace', '300']);
      assert.equal(get.code, 0);
      assert.equal(get.report.errors, 0);
      assert.equal(get.report.requests, 3000);
      assert.equal(await running.service.store.len('bench'), 300);
    } finally {
      await running.close();
    }
  });

  test('over mutual TLS (wss)', async () => {
    const running = await startWebSocketServer({ mtls: true });
    try {
      const files = running.tlsFiles!;
      const { code, report } = await bench(['--ws', '--server', new URL(running.url).host, '--tls-ca', files.ca, '--tls-cert', files.client, '--tls-key', files.clientKey, '--command', 'mix', '--requests', '1000', '-c', '2', '-P', '4']);
      assert.equal(code, 0);
      assert.equal(report.tls, true);
      assert.equal(report.errors, 0);
    } finally {
      await running.close();
    }
  });

  test('--ws against a port that is not an HTTP listener, and --ws with yamux, fail clearly', async () => {
    const running = await startWebSocketServer();
    try {
      let err = '';
      const io = { stdout: { write: () => true }, stderr: { write: (t: string) => (err += t), isTTY: false } };
      assert.equal(await benchCommand(['--ws', '--server', `127.0.0.1:${running.port}`, '--requests', '10'], io), 1);
      assert.match(err, /cannot connect to 127\.0\.0\.1:\d+: .*HTTP/);
      err = '';
      assert.equal(await benchCommand(['--ws', '--mux', 'yamux'], io), 2);
      assert.match(err, /--ws and --mux yamux cannot be used together/);
    } finally {
      await running.close();
    }
  });
});

describe('input limits for messages still arriving', () => {
  test('a message not completed within the frame time limit closes the connection with 1008; its bytes leave the input budget', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startWebSocketServer({ endpoint: { frameTimeoutMs: 300, logger } });
    try {
      const budget = running.server.inputBudget;
      const socket = await rawWebSocket(running.url);
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      // A message announcing 5,000 bytes, of which 100 arrive.
      socket.write(Buffer.concat([clientFrameHeader(5000), Buffer.alloc(100)]));
      await until(() => budget.used >= 100, 'the partial message to be counted');
      await once(socket, 'close');
      const bytes = Buffer.concat(received);
      // A close frame: opcode 8, then the code 1008.
      assert.equal(bytes[0], 0x88);
      assert.equal(bytes.readUInt16BE(2), 1008);
      assert.match(bytes.subarray(4).toString(), /not completed in time/);
      await until(() => budget.used === 0, 'the budget to be given back');
      assert.ok(lines.some((l) => l.msg === 'WebSocket message not completed in time; closing the connection'));
    } finally {
      await running.close();
    }
  });

  test('a message arriving slowly but steadily completes', async () => {
    const running = await startWebSocketServer({ endpoint: { frameTimeoutMs: 300 } });
    try {
      const socket = await rawWebSocket(running.url);
      const frame = encodeFrame(encodeRequest(requests.hset('slow', 'k', 'v')));
      const whole = Buffer.concat([clientFrameHeader(frame.length), frame]);
      // Each piece well within the limit of the message's first byte, all of them together too.
      for (let i = 0; i < whole.length; i += 8) {
        socket.write(whole.subarray(i, i + 8));
        await new Promise((r) => setTimeout(r, 5));
      }
      await until(() => running.service.store.get('slow', 'k') !== undefined, 'the write to arrive');
      socket.destroy();
    } finally {
      await running.close();
    }
  });
});
