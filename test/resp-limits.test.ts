/**
 * The RESP listener under the same limits as the protobuf listener: output back-pressure, the
 * subscriber backlog, connection and request size limits, reply size, idle timeout, and a
 * graceful shutdown that answers what was asked.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeCommand, plain, RawResp, startResp } from './helpers/resp.js';
import { until } from './helpers/wait.js';

/** Fields of the CLIENT LIST line of client `id`. */
async function clientFields(port: number, id: bigint): Promise<Record<string, string>> {
  const c = await RawResp.connect(port);
  try {
    const list = String(plain(await c.call('CLIENT', 'LIST', 'ID', String(id))));
    return Object.fromEntries(list.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  } finally {
    c.destroy();
  }
}

describe('RESP limits', () => {
  test('a client that sends without reading is no longer read from; nothing is lost once it reads', { timeout: 120_000 }, async () => {
    const env = await startResp({ resp: { maxOutputBuffer: 256 * 1024 } });
    try {
      const setup = await RawResp.connect(env.port);
      const fields: string[] = [];
      for (let i = 0; i < 200; i++) fields.push(`field-${i}`, 'v'.repeat(20));
      await setup.call('HSET', 'big', ...fields);
      setup.destroy();

      const flood = await RawResp.connect(env.port);
      const id = (await flood.call('CLIENT', 'ID')) as { t: 'int'; v: bigint };
      flood.socket.pause();
      const command = encodeCommand(['HGETALL', 'big']);
      // Each reply is ~7 KB: 3,000 of them would be 21 MB if the server kept reading and answering,
      // far past both the 256 KiB output limit and the bound asserted below.
      const sent = 3_000;
      for (let i = 0; i < sent; i++) flood.socket.write(command);
      await new Promise((r) => setTimeout(r, 1000));
      const stuck = await clientFields(env.port, id.v);
      assert.ok(Number(stuck.omem) + Number(stuck.obl) < 8 * 1024 * 1024, `output held by the server: ${stuck.omem} + ${stuck.obl} bytes`);
      assert.ok(Number(stuck.qbuf) < 4 * 1024 * 1024, `input held by the server: ${stuck.qbuf} bytes`);
      flood.socket.resume();
      const replies = await flood.replies(sent, 90_000);
      assert.equal(replies.length, sent);
      assert.ok(replies.every((r) => r.t === 'array' && r.v.length === 400));
      flood.destroy();
    } finally {
      await env.close();
    }
  });

  test('a connection with a long pipeline does not hold up the others', { timeout: 60_000 }, async () => {
    const env = await startResp();
    try {
      const flood = await RawResp.connect(env.port);
      const other = await RawResp.connect(env.port);
      const total = 100_000;
      flood.write(Buffer.from('*1\r\n$4\r\nPING\r\n'.repeat(total)));
      await until(() => flood.pending > 0, 'the flood to be answered');
      assert.deepEqual(await other.call('PING'), { t: 'simple', v: 'PONG' });
      assert.ok(flood.pending < total, `the other client was answered before the flood finished (${flood.pending} of ${total} done)`);
      assert.equal((await flood.replies(total)).length, total);
      flood.destroy();
      other.destroy();
    } finally {
      await env.close();
    }
  });

  test('a subscriber that does not read is disconnected past its backlog; publishers are unaffected', { timeout: 60_000 }, async () => {
    const env = await startResp({ resp: { subscriberBacklogMessages: 1_000, subscriberBacklogBytes: 64 * 1024 } });
    try {
      const sub = await RawResp.connect(env.port);
      await sub.call('SUBSCRIBE', 'flood');
      sub.socket.pause();
      const pub = await RawResp.connect(env.port);
      const payload = 'x'.repeat(1000);
      for (let round = 0; round < 200 && env.service.pubsub.size > 0; round++) {
        for (let i = 0; i < 100; i++) pub.send('PUBLISH', 'flood', payload);
        await pub.replies(100);
      }
      assert.equal(env.service.pubsub.size, 0, 'the slow subscriber was dropped');
      assert.deepEqual(await pub.call('PING'), { t: 'simple', v: 'PONG' });
      sub.socket.resume();
      await sub.closed();
      pub.destroy();
    } finally {
      await env.close();
    }
  });

  test('connections over the limit get Redis’s error and are closed', async () => {
    const env = await startResp({ resp: { maxConnections: 2 } });
    try {
      const a = await RawResp.connect(env.port);
      const b = await RawResp.connect(env.port);
      await a.call('PING');
      await b.call('PING');
      const c = await RawResp.connect(env.port);
      assert.deepEqual(await c.reply(), { t: 'error', v: 'ERR max number of clients reached' });
      await c.closed();
      a.destroy();
      b.destroy();
    } finally {
      await env.close();
    }
  });

  test('a bulk over the maximum frame size, or a request over the request limit, is a protocol error', async () => {
    const env = await startResp({ resp: { maxFrameSize: 64 * 1024 } });
    try {
      const a = await RawResp.connect(env.port);
      a.write(`*3\r\n$4\r\nHSET\r\n$1\r\nh\r\n$${64 * 1024 + 1}\r\n`);
      assert.deepEqual(await a.reply(), { t: 'error', v: 'ERR Protocol error: invalid bulk length' });
      await a.closed();
      const b = await RawResp.connect(env.port);
      const args = Array.from({ length: 5 }, () => 'v'.repeat(30_000));
      b.write(encodeCommand(['HMGET', 'h', ...args]));
      assert.deepEqual(await b.reply(), { t: 'error', v: `ERR Protocol error: request larger than ${64 * 1024 + 64 * 1024} bytes` });
      await b.closed();
      const c = await RawResp.connect(env.port);
      // 64 KiB of inline command without a newline (Redis's protocol desync check).
      c.write(Buffer.alloc(70 * 1024, 'a'));
      assert.deepEqual(await c.reply(), { t: 'error', v: 'ERR Protocol error: too big inline request' });
      await c.closed();
    } finally {
      await env.close();
    }
  });

  test('a reply larger than the maximum frame size is refused; the connection stays usable', async () => {
    const env = await startResp({ resp: { maxFrameSize: 64 * 1024 } });
    try {
      const c = await RawResp.connect(env.port);
      const fields: string[] = [];
      for (let i = 0; i < 100; i++) fields.push(`f${i}`, 'v'.repeat(1000));
      await c.call('HSET', 'wide', ...fields);
      for (const command of [['HGETALL', 'wide'], ['HVALS', 'wide'], ['HRANDFIELD', 'wide', '-1000', 'WITHVALUES']]) {
        const r = await c.call(...command);
        assert.equal(r.t, 'error', command.join(' '));
        assert.match((r as { v: string }).v, /^ERR Response too large/);
      }
      assert.equal((await c.call('HKEYS', 'wide')).t, 'array', 'a smaller reply of the same table is fine');
      assert.deepEqual(await c.call('PING'), { t: 'simple', v: 'PONG' });
      c.destroy();
    } finally {
      await env.close();
    }
  });

  test('commands naming more keys than allowed are refused, changing nothing', async () => {
    const env = await startResp({ maxKeysPerCommand: 10 });
    try {
      const c = await RawResp.connect(env.port);
      const keys = Array.from({ length: 11 }, (_, i) => `k${i}`);
      assert.deepEqual(await c.call('HMGET', 'h', ...keys), { t: 'error', v: 'ERR Invalid command: 11 keys exceed the maximum of 10 per command' });
      assert.deepEqual(await c.call('HSET', 'h', ...keys.flatMap((k) => [k, 'v'])), { t: 'error', v: 'ERR Invalid command: 11 keys exceed the maximum of 10 per command' });
      assert.deepEqual(await c.call('EXISTS', 'h'), { t: 'int', v: 0n });
      c.destroy();
    } finally {
      await env.close();
    }
  });

  test('a request that does not complete in time closes the connection (slow drip)', async () => {
    const env = await startResp({ resp: { frameTimeoutMs: 300 } });
    try {
      const c = await RawResp.connect(env.port);
      c.write('*2\r\n$4\r\nECHO\r\n$10\r\nabc');
      assert.deepEqual(await c.reply(), { t: 'error', v: 'ERR Service unavailable: request not completed within 300 ms' });
      await c.closed();
      const idle = await RawResp.connect(env.port);
      await new Promise((r) => setTimeout(r, 800));
      assert.deepEqual(await idle.call('PING'), { t: 'simple', v: 'PONG' }, 'a connection between requests is not timed');
      idle.destroy();
    } finally {
      await env.close();
    }
  });

  test('large requests wait for room in the input budget; small ones never do', { timeout: 60_000 }, async () => {
    const env = await startResp({ resp: { inputBudget: 256 * 1024, frameTimeoutMs: 0 } });
    try {
      const big = 200 * 1024;
      const a = await RawResp.connect(env.port);
      a.write(`*2\r\n$4\r\nECHO\r\n$${big}\r\n`);
      a.write(Buffer.alloc(big / 2, 'a'));
      await until(() => env.resp.context.inputBudget.used >= big, 'the first request to reserve its size');
      const b = await RawResp.connect(env.port);
      assert.deepEqual(await b.call('PING'), { t: 'simple', v: 'PONG' }, 'small requests are not held up');
      const c = await RawResp.connect(env.port);
      c.send('ECHO', 'c'.repeat(big));
      await until(() => env.resp.context.inputBudget.waiting === 1, 'the second large request to wait');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(c.pending, 0, 'not read while the budget is full');
      a.write(Buffer.alloc(big / 2, 'a'));
      a.write('\r\n');
      const [echoA] = await a.replies(1);
      assert.equal((echoA as { v: Buffer }).v.length, big);
      const [echoC] = await c.replies(1);
      assert.equal((echoC as { v: Buffer }).v.length, big);
      for (const x of [a, b, c]) x.destroy();
      await until(() => env.resp.context.inputBudget.used === 0, 'every reservation to be returned');
    } finally {
      await env.close();
    }
  });

  test('idle clients are closed after the idle timeout, subscribers are not', { timeout: 30_000 }, async () => {
    const env = await startResp({ resp: { idleTimeoutMs: 300 } });
    try {
      const idle = await RawResp.connect(env.port);
      const sub = await RawResp.connect(env.port);
      await sub.call('SUBSCRIBE', 'ch');
      await idle.closed(10_000);
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(sub.ended, false);
      sub.destroy();
    } finally {
      await env.close();
    }
  });

  test('an HTTP request on the RESP port is dropped (cross-protocol scripting)', async () => {
    const env = await startResp();
    try {
      const c = await RawResp.connect(env.port);
      c.write('POST / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await c.closed();
      assert.equal(c.pending, 0);
    } finally {
      await env.close();
    }
  });

  test('graceful shutdown answers every command already received, then closes; subscribers are closed', async () => {
    const env = await startResp();
    const c = await RawResp.connect(env.port);
    const sub = await RawResp.connect(env.port);
    await sub.call('SUBSCRIBE', 'ch');
    for (let i = 0; i < 1000; i++) c.send('HSET', 'h', `f${i}`, 'v');
    c.send('HLEN', 'h');
    await until(() => env.service.store.len('h') === 1000, 'the commands to be executed');
    await env.close();
    const replies = await c.replies(1001);
    assert.deepEqual(replies.at(-1), { t: 'int', v: 1000n });
    await c.closed();
    await sub.closed();
  });
});
