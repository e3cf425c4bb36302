/**
 * The client against real server processes that are SIGKILLed and restarted on the same port: a
 * connected client and its subscriptions carry on without a new `connect()`; with reconnecting
 * off or given up, everything fails with `ConnectionClosedError`, never a raw socket error.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type ConnectOptions, type KvClient } from '../src/client/client.js';
import { ConnectionClosedError } from '../src/client/core/errors.js';
import { startServerProcess, type ServerProcess } from './helpers/cli.js';
import { until } from './helpers/wait.js';
import { drain } from './helpers/subscriptions.js';

const TIMEOUT = { timeout: 120_000 };
const FAST_RETRY = { initialDelayMs: 20, maxDelayMs: 200 };

for (const mux of ['none', 'yamux'] as const) {
  const serverArgs = (port: number) => ['--memory', '--listen', `127.0.0.1:${port}`, '--mux', mux];

  describe(`reconnecting after SIGKILL (mux ${mux})`, () => {
    test('a connected client and its subscription carry on after the server restarts on the same port', TIMEOUT, async () => {
      let server: ServerProcess = await startServerProcess(serverArgs(0));
      const port = server.port;
      const options: ConnectOptions = { host: '127.0.0.1', port, mux, reconnect: FAST_RETRY, requestTimeoutMs: 30_000 };
      const kv = await connect(options);
      const publisher = await connect(options);
      const events: string[] = [];
      for (const e of ['connect', 'disconnect', 'reconnecting', 'reconnect', 'error', 'close'] as const) kv.on(e, () => events.push(e));
      try {
        await kv.hset('t', 'before', 'x');
        const sub = await kv.subscribe('news');
        const firstId = sub.id;
        const got = drain(sub);
        await publisher.publish('news', 'one');
        await until(() => got.messages.length === 1, 'the first message', 20_000);

        assert.equal(await server.stop('SIGKILL'), null);
        await until(() => kv.state === 'reconnecting', 'the client to notice', 20_000);
        // Commands issued while the server is down wait in the offline queue.
        const queued = kv.hset('t', 'during', 'y');
        assert.ok(kv.queued >= 1);

        server = await startServerProcess(serverArgs(port));
        assert.equal(await queued, undefined, 'the queued command ran on the new server');
        assert.equal(await kv.hget('t', 'during'), 'y');
        await until(() => sub.resubscribed >= 1, 'the subscription to be renewed', 30_000);
        assert.ok(sub.active);
        assert.notEqual(sub.id, 0);
        assert.ok(firstId > 0);
        await until(() => publisher.state === 'connected', 'the publisher to reconnect', 30_000);
        await publisher.publish('news', 'two');
        await until(() => got.messages.length === 2, 'the message published after the restart', 20_000);
        assert.deepEqual(got.messages, [['one'], ['two']]);
        assert.ok(events.includes('disconnect') && events.includes('reconnecting') && events.includes('reconnect'), events.join(','));
        assert.equal(events.filter((e) => e === 'connect').length, events.filter((e) => e === 'reconnect').length);
        await sub.unsubscribe();
        assert.equal(await got.ended, undefined, 'unsubscribe ends the loop normally');
      } finally {
        await kv.close();
        await publisher.close();
        await server.stop('SIGKILL');
      }
      assert.equal(events.at(-1), 'close');
    });

    test('with reconnect off, requests and subscriptions fail with ConnectionClosedError', TIMEOUT, async () => {
      const server = await startServerProcess(serverArgs(0));
      const kv: KvClient = await connect({ host: '127.0.0.1', port: server.port, mux, reconnect: false });
      let closeError: Error | undefined;
      kv.on('close', (err) => (closeError = err));
      const sub = await kv.subscribe('gone');
      const got = drain(sub);
      await server.stop('SIGKILL');
      const err = await got.ended;
      assert.ok(err instanceof ConnectionClosedError, String(err));
      await until(() => kv.state === 'closed', 'the client to close');
      assert.ok(closeError instanceof ConnectionClosedError);
      await assert.rejects(kv.hget('t', 'k'), (e: Error) => e instanceof ConnectionClosedError && /client is closed/.test(e.message));
      await kv.close();
    });

    test('when reconnecting gives up, the iterator throws instead of ending quietly', TIMEOUT, async () => {
      const server = await startServerProcess(serverArgs(0));
      const kv = await connect({ host: '127.0.0.1', port: server.port, mux, reconnect: { ...FAST_RETRY, maxAttempts: 3 } });
      const sub = await kv.subscribe('forever-gone');
      const got = drain(sub);
      await server.stop('SIGKILL');
      await until(() => kv.state !== 'connected', 'the client to notice');
      const pending = kv.hget('t', 'k', { timeoutMs: 0 }).catch((e: unknown) => e);
      const err = await got.ended;
      assert.ok(err instanceof ConnectionClosedError, String(err));
      assert.match(err.message, /gave up/);
      const requestError = await pending;
      assert.ok(requestError instanceof ConnectionClosedError, String(requestError));
      assert.match(requestError.message, /gave up reconnecting/);
      await kv.close();
    });
  });
}

describe('the offline queue', () => {
  test('is bounded; what fits runs once the server is back', TIMEOUT, async () => {
    let server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const port = server.port;
    const kv = await connect({ host: '127.0.0.1', port, reconnect: FAST_RETRY, offlineQueueLimit: 3, requestTimeoutMs: 60_000 });
    try {
      await server.stop('SIGKILL');
      await until(() => kv.state === 'reconnecting', 'the client to notice');
      const queued = [kv.hset('q', 'a', 1n), kv.hset('q', 'b', 2n), kv.hset('q', 'c', 3n)];
      await assert.rejects(kv.hset('q', 'd', 4n), (e: Error) => e instanceof ConnectionClosedError && /offline queue is full \(3 commands\)/.test(e.message));
      server = await startServerProcess(['--memory', '--listen', `127.0.0.1:${port}`]);
      assert.deepEqual(await Promise.all(queued), [undefined, undefined, undefined]);
      assert.deepEqual(await kv.hmget('q', ['a', 'b', 'c', 'd']), [1n, 2n, 3n, undefined]);
    } finally {
      await kv.close();
      await server.stop('SIGKILL');
    }
  });
});
