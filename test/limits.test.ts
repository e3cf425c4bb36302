/** Configured limits: each is enforced, answered as SPEC 4 says, and logged when hit. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { requests } from '../src/protocol/requests.js';
import { MemoryStore } from '../src/storage/memory.js';
import { Service } from '../src/service/service.js';
import { capturingLogger } from './helpers/logs.js';
import { RawPeer, startServer } from './helpers/server.js';
import { gzipFrame, manyKeysPayload } from './fuzz/inputs.js';
import { countRepeatedEntries, encodeRequest } from '../src/protocol/wire.js';
import { until } from './helpers/wait.js';


describe('limits', () => {
  test('max connections: one more gets a 503 and is closed; room frees up on close', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startServer({ service: new Service({ store: new MemoryStore(), logger }), maxConnections: 2 });
    try {
      const a = await RawPeer.connect(running.port);
      const b = await RawPeer.connect(running.port);
      await until(() => running.server.connectionCount === 2, 'two connections');
      const c = await RawPeer.connect(running.port);
      const [refused] = await c.responses(1);
      assert.equal(refused!.status, 503);
      assert.match(refused!.message, /too many connections \(maximum 2\)/);
      await c.closed();
      assert.ok(lines.some((l) => l.msg === 'connection limit reached; refusing a connection' && l.maxConnections === 2));
      a.destroy();
      await until(() => running.server.connectionCount === 1, 'a to be gone');
      const d = await RawPeer.connect(running.port);
      d.send(requests.hexist('t', 'k'));
      const [ok] = await d.responses(1);
      assert.equal(ok!.status, 200);
      b.destroy();
      d.destroy();
    } finally {
      await running.close();
    }
  });

  test('idle timeout closes a connection that sends nothing, and is logged', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startServer({ service: new Service({ store: new MemoryStore(), logger }), idleTimeoutMs: 100 });
    try {
      const idle = await RawPeer.connect(running.port);
      idle.send(requests.hexist('t', 'k'));
      await idle.responses(1);
      await idle.closed();
      assert.ok(lines.some((l) => l.msg === 'idle timeout; closing the connection'));
    } finally {
      await running.close();
    }
  });

  test('no idle timeout by default', async () => {
    const running = await startServer();
    try {
      const peer = await RawPeer.connect(running.port);
      await new Promise((r) => setTimeout(r, 300));
      peer.send(requests.hexist('t', 'k'));
      const [r] = await peer.responses(1);
      assert.equal(r!.status, 200);
      peer.destroy();
    } finally {
      await running.close();
    }
  });

  test('max frame size is logged when hit', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startServer({ service: new Service({ store: new MemoryStore(), logger }), maxFrameSize: 1024 });
    try {
      const peer = await RawPeer.connect(running.port);
      peer.send(requests.hset('t', 'k', Buffer.alloc(2000, 1).toString('base64')));
      const [r] = await peer.responses(1);
      assert.equal(r!.status, 413);
      await peer.closed();
      assert.ok(lines.some((l) => l.msg === 'frame too large; closing the stream'));
    } finally {
      await running.close();
    }
  });

  test('max keys per command is a 400 naming the limit, and is logged', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startServer({ service: new Service({ store: new MemoryStore(), logger, maxKeysPerCommand: 3 }) });
    try {
      const kv = await running.client();
      await assert.rejects(kv.hmget('t', ['a', 'b', 'c', 'd']), /4 keys exceed the maximum of 3/);
      assert.deepEqual(await kv.hmget('t', ['a', 'b', 'c']), [undefined, undefined, undefined]);
      assert.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.includes('4 keys exceed the maximum of 3')));
      await kv.close();
    } finally {
      await running.close();
    }
  });

  test('subscriber backlog: hitting it is logged with the backlog size', async () => {
    const { logger, lines } = capturingLogger();
    const running = await startServer({
      service: new Service({ store: new MemoryStore(), logger }),
      subscriberBacklogMessages: 10,
      subscriberBacklogBytes: 64 * 1024,
    });
    try {
      const stalled = await RawPeer.connect(running.port);
      stalled.send(requests.subscribe('t'));
      await stalled.responses(1);
      stalled.socket.pause();
      const kv = await running.client();
      for (let i = 0; i < 100_000 && running.service.pubsub.size > 0; i++) await kv.publish('t', 'x'.repeat(1000));
      assert.equal(running.service.pubsub.size, 0);
      assert.ok(lines.some((l) => l.msg === 'subscriber backlog limit reached; disconnecting the subscriber'));
      stalled.destroy();
      await kv.close();
    } finally {
      await running.close();
    }
  });
});

describe('multi-key requests over the limit are refused before they are decoded', () => {
  test('a compressed HMGET naming millions of keys is a 400 and other clients are not held up', async () => {
    const running = await startServer({ service: new Service({ store: new MemoryStore(), maxKeysPerCommand: 1000 }) });
    try {
      const peer = await RawPeer.connect(running.port);
      peer.write(gzipFrame(manyKeysPayload(3_000_000)));
      const [r] = await peer.responses(1);
      assert.equal(r!.status, 400);
      assert.equal(r!.message, 'Invalid command: 3000000 keys exceed the maximum of 1000 per command');
      peer.send(requests.hexist('t', 'k'));
      assert.equal((await peer.responses(1))[0]!.status, 200, 'the connection stays usable');
      peer.destroy();
    } finally {
      await running.close();
    }
  });

  test('countRepeatedEntries counts keys, pairs and published values without decoding', () => {
    const keys = Array.from({ length: 7 }, (_, i) => `k${i}`);
    assert.equal(countRepeatedEntries(encodeRequest(requests.hmget('t', keys))), 7);
    assert.equal(countRepeatedEntries(encodeRequest(requests.hmdel('t', keys))), 7);
    assert.equal(countRepeatedEntries(encodeRequest(requests.hmexist('t', keys))), 7);
    assert.equal(countRepeatedEntries(encodeRequest(requests.hmset('t', { a: 1n, b: 'x', c: null }))), 3);
    assert.equal(countRepeatedEntries(encodeRequest(requests.publish('t', 1n, 2n))), 2);
    assert.equal(countRepeatedEntries(encodeRequest(requests.hget('t', 'k'))), 1, 'a single key is field 2 as well');
    assert.equal(countRepeatedEntries(Buffer.from([0xff, 0xff])), 0, 'junk stops the count');
  });
});
