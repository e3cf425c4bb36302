import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { MemoryStore } from '../src/storage/memory.js';
import { Service } from '../src/service/service.js';
import { startServer } from './helpers/server.js';

test('hooks fire in lifecycle order, each list in registration order', async () => {
  const seen: string[] = [];
  const service = new Service({ store: new MemoryStore() })
    .addHook('onRequestReceived', (req) => seen.push(`received1:${req.requestData?.$case}`))
    .addHook('onRequestReceived', () => seen.push('received2'))
    .addHook('onRequestExecuted', (res, req) => seen.push(`executed:${res.status}:${req.requestData?.$case}`))
    .addHook('beforeResponseSend', () => void seen.push('before1'))
    .addHook('beforeResponseSend', () => void seen.push('before2'))
    .addHook('afterResponseSend', (res) => seen.push(`after:${res.status}`));
  const res = await service.execute(requests.hget('t', 'missing'));
  assert.deepEqual(seen, ['received1:hget', 'received2', 'executed:404:hget', 'before1', 'before2']);
  service.responseSent(res);
  assert.deepEqual(seen.at(-1), 'after:404');
});

test('a before-send hook can replace or mutate the response', async () => {
  const service = new Service({ store: new MemoryStore() })
    .addHook('beforeResponseSend', (res) => ({ ...res, message: 'replaced' }))
    .addHook('beforeResponseSend', (res) => {
      res.values = [{ value: { $case: 'string', value: 'mutated' } }];
    });
  const res = await service.execute(requests.hset('t', 'k', 'v'));
  assert.equal(res.message, 'replaced');
  assert.deepEqual(res.values.map(fromValue), ['mutated']);
});

test('a throwing hook is logged and isolated', async () => {
  const lines: string[] = [];
  const logger = pino({ level: 'error' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
  let ranAfter = false;
  const service = new Service({ store: new MemoryStore(), logger })
    .addHook('onRequestReceived', () => {
      throw new Error('boom');
    })
    .addHook('beforeResponseSend', () => {
      throw new Error('boom2');
    })
    .addHook('beforeResponseSend', () => {
      ranAfter = true;
    });
  const res = await service.execute(requests.hset('t', 'k', 'v'));
  assert.equal(res.status, 200);
  assert.equal(ranAfter, true);
  assert.equal(lines.length, 2);
  assert.match(lines[0], /hook onRequestReceived threw/);
  assert.match(lines[0], /boom/);
});

test('an unknown hook name is refused when registered', () => {
  const service = new Service({ store: new MemoryStore() });
  assert.throws(() => service.addHook('onNothing' as never, (() => {}) as never), /unknown hook "onNothing"/);
});

test('with no hooks the memory store answers synchronously (no promise)', () => {
  const service = new Service({ store: new MemoryStore() });
  const res = service.execute(requests.hset('t', 'k', 'v'));
  assert.equal(typeof (res as { then?: unknown }).then, 'undefined');
  assert.equal(service.wantsSentNotice, false);
});

test('over a socket: after-send hooks fire once each response is written, in order, and see what was sent', async () => {
  const sent: string[] = [];
  const service = new Service({ store: new MemoryStore() })
    .addHook('beforeResponseSend', (res) => {
      if (res.status === 404) res.message = `${res.message} (checked by a hook)`;
    })
    .addHook('afterResponseSend', (res) => sent.push(`${res.status}:${res.message}`));
  const running = await startServer({ service });
  try {
    const kv = await running.client();
    await Promise.all([kv.hset('t', 'k', 'v'), kv.hget('t', 'k'), kv.send(requests.hget('t', 'missing'))]);
    const missing = await kv.send(requests.hget('t', 'missing'));
    assert.equal(missing.message, 'Not found: table t, key missing (checked by a hook)', 'the client got the changed response');
    // The client has every answer, so every write has completed; hooks run in send order.
    for (let i = 0; i < 100 && sent.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(sent, ['200:', '200:', '404:Not found: table t, key missing (checked by a hook)', '404:Not found: table t, key missing (checked by a hook)']);
    await kv.close();
  } finally {
    await running.close();
  }
});

test('hooks see pub/sub requests like any other', async () => {
  const seen: string[] = [];
  const service = new Service({ store: new MemoryStore() })
    .addHook('onRequestReceived', (req) => seen.push(`received:${req.requestData?.$case}`))
    .addHook('onRequestExecuted', (res, req) => seen.push(`executed:${req.requestData?.$case}:${res.status}`));
  const running = await startServer({ service });
  try {
    const kv = await running.client();
    const sub = await kv.subscribe('news');
    const first = (async () => {
      for await (const m of sub) return m;
    })();
    await kv.publish('news', 'hello');
    assert.deepEqual(await first, ['hello']);
    await kv.unsubscribe('news', sub.id).catch(() => {});
    await kv.close();
    for (const c of ['subscribe', 'publish']) {
      assert.ok(seen.includes(`received:${c}`), c);
      assert.ok(seen.includes(`executed:${c}:200`), c);
    }
    assert.ok(seen.includes('received:unsubscribe'));
  } finally {
    await running.close();
  }
});
