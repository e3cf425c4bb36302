/**
 * `protokv/browser` as a package user gets it — the bundled module the package exports — run in
 * Node with the `ws` package's WebSocket against real `protokv serve` processes: the same API and
 * value mapping as the Node client, subscriptions, reconnecting after the server is killed and
 * restarted, timeouts and abort signals, the Origin rule and HTTPS with client certificates.
 * (The console's Chromium test runs the same module in a real browser.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WebSocketServer } from 'ws';
import type * as BrowserClient from '../src/browser/index.js';
import * as NodeClient from '../src/client/index.js';
import type { KvValue } from '../src/protocol/values.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { startServerProcess, type ServerProcess } from './helpers/cli.js';
import { get } from './helpers/http.js';
import { parseExposition, valueOf } from './helpers/metrics.js';
import { until } from './helpers/wait.js';
import { webSocketClass } from './helpers/websocket.js';
import { drain } from './helpers/subscriptions.js';

const TIMEOUT = { timeout: 120_000 };
const run = promisify(execFile);
const FAST_RETRY = { initialDelayMs: 20, maxDelayMs: 200 };

/** The package's own `protokv/browser` export: the esbuild bundle, not the TypeScript sources. */
const browser = (await import('protokv/browser')) as typeof BrowserClient;

/** `ws://HOST:PORT/ws` of a server process's HTTP listener. */
const wsUrl = (server: ServerProcess): string => `${server.http!.replace(/^http/, 'ws')}/ws`;

const bytesOf = (value: KvValue | undefined): Buffer => {
  assert.ok(value instanceof Uint8Array, `a binary value, not ${typeof value}`);
  return Buffer.from(value);
};

describe('protokv/browser is the Node client over WebSocket', () => {
  test('the package export is the browser bundle, with the Node client\'s methods and error classes', () => {
    assert.match(import.meta.resolve('protokv/browser'), /\/dist\/browser\/protokv\.js$/);
    const nodeMethods = Object.getOwnPropertyNames(NodeClient.KvClient.prototype).sort();
    const browserMethods = Object.getOwnPropertyNames(browser.KvClient.prototype).sort();
    assert.deepEqual(browserMethods, nodeMethods);
    for (const name of ['ProtokvError', 'ConnectionClosedError', 'TimeoutError', 'AbortError', 'SlowConsumerError', 'ProtocolError'] as const) {
      assert.equal(typeof browser[name], 'function', name);
    }
    assert.deepEqual(browser.fromValue(browser.toValue(-9223372036854775808n)), -9223372036854775808n);
  });

  test('the package ships the browser bundle and the built console', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root });
    const files = new Set((JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
    for (const file of ['dist/browser/protokv.js', 'dist/src/browser/index.d.ts', 'dist/console/index.html', 'dist/console/console.js', 'dist/console/console.css', 'dist/console/favicon.svg']) {
      assert.ok(files.has(file), `${file} is in the package`);
    }
  });

  test('outside a web page, connect() asks for a URL; a URL that is not ws: or wss: is refused', async () => {
    await assert.rejects(browser.connect({ WebSocket: webSocketClass() }), /needs options\.url/);
    await assert.rejects(browser.connect({ url: 'http://127.0.0.1:1/ws', WebSocket: webSocketClass() }), /must be a ws: or wss: URL/);
  });
});

describe('protokv/browser against protokv serve', () => {
  let server: ServerProcess;
  let kv: BrowserClient.KvClient;
  let node: NodeClient.KvClient;
  before(async () => {
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    kv = await browser.connect({ url: wsUrl(server), WebSocket: webSocketClass() });
    node = await NodeClient.connect({ host: '127.0.0.1', port: server.port });
  });
  after(async () => {
    await kv?.close();
    await node?.close();
    await server?.stop();
  });

  test('typed values keep their type both ways, int64 extremes included; big values travel gzipped', async () => {
    const big = randomBytes(20_000);
    const values: [string, KvValue][] = [
      ['s', 'héllo ✓'],
      ['i', 9007199254740993n],
      ['min', -9223372036854775808n],
      ['max', 9223372036854775807n],
      ['f', 1.5],
      ['b', true],
      ['n', null],
      ['big', 'x'.repeat(50_000)],
    ];
    await kv.hmset('typed', values);
    await kv.hset('typed', 'bin', big);
    for (const [key, value] of values) {
      assert.deepEqual(await kv.hget('typed', key), value, key);
      assert.deepEqual(await node.hget('typed', key), value, `${key}, read by the Node client`);
    }
    assert.ok(bytesOf(await kv.hget('typed', 'bin')).equals(big));
    assert.ok((await node.hget('typed', 'bin') as Buffer).equals(big));
    await node.hset('typed', 'from-node', new Uint8Array([1, 2, 3]));
    assert.deepEqual([...bytesOf(await kv.hget('typed', 'from-node'))], [1, 2, 3]);
    assert.equal(await kv.hget('typed', 'missing'), undefined);
    await assert.rejects(kv.unsubscribe('t', 999_999), (e: Error) => e instanceof browser.ProtokvError && e.status === 404);
  });

  test('pipelined requests are answered in order; table paging works', async () => {
    const writes = Array.from({ length: 500 }, (_, i) => kv.hset('pipe', `k${String(i).padStart(3, '0')}`, BigInt(i)));
    await Promise.all(writes);
    const reads = await Promise.all(Array.from({ length: 500 }, (_, i) => kv.hget('pipe', `k${String(i).padStart(3, '0')}`)));
    assert.deepEqual(reads, Array.from({ length: 500 }, (_, i) => BigInt(i)));
    assert.equal(await kv.hlen('pipe'), 500);
    let keys = 0;
    for await (const _pair of kv.scan('pipe', { count: 64 })) keys++;
    assert.equal(keys, 500);
  });

  test('a subscription is an async iterable of what the Node client publishes', async () => {
    const sub = await kv.subscribe('news');
    const got = drain(sub);
    await node.publish('news', 'one', 1n, new Uint8Array([9]));
    await node.publish('news', 'two');
    await until(() => got.messages.length === 2, 'two messages');
    assert.equal(got.messages[0]![0], 'one');
    assert.equal(got.messages[0]![1], 1n);
    assert.deepEqual([...bytesOf(got.messages[0]![2]!)], [9]);
    assert.deepEqual(got.messages[1], ['two']);
    await sub.unsubscribe();
    assert.equal(await got.ended, undefined);
  });

  test('WebSocket connections and their commands show in /metrics', async () => {
    await kv.hexist('t', 'k');
    const samples = parseExposition((await get(server.http!, '/metrics')).body);
    assert.ok((valueOf(samples, 'protokv_connections', { transport: 'websocket' }) ?? 0) >= 1);
    assert.ok((valueOf(samples, 'protokv_connections_total', { transport: 'websocket' }) ?? 0) >= 1);
    assert.ok((valueOf(samples, 'protokv_commands_total', { command: 'HEXIST', status: '200' }) ?? 0) >= 1);
  });
});

describe('protokv/browser reconnects', () => {
  test('a connected client and its subscription carry on after the server restarts on the same ports', TIMEOUT, async () => {
    let server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const ports = ['--listen', `127.0.0.1:${server.port}`, '--http', new URL(server.http!).host];
    const url = wsUrl(server);
    const kv = await browser.connect({ url, WebSocket: webSocketClass(), reconnect: FAST_RETRY, requestTimeoutMs: 30_000 });
    const events: string[] = [];
    for (const e of ['connect', 'disconnect', 'reconnecting', 'reconnect', 'close'] as const) kv.on(e, () => events.push(e));
    let publisher = await NodeClient.connect({ host: '127.0.0.1', port: server.port });
    try {
      const sub = await kv.subscribe('news');
      const got = drain(sub);
      await publisher.publish('news', 'before');
      await until(() => got.messages.length === 1, 'the first message');
      await publisher.close();

      assert.equal(await server.stop('SIGKILL'), null);
      await until(() => kv.state === 'reconnecting', 'the client to notice', 20_000);
      const queued = kv.hset('t', 'during', 'queued while down');
      server = await startServerProcess(['--memory', ...ports]);
      assert.equal(await queued, undefined, 'the queued command ran on the new server');
      await until(() => sub.resubscribed >= 1, 'the subscription to be renewed', 30_000);
      publisher = await NodeClient.connect({ host: '127.0.0.1', port: server.port });
      await publisher.publish('news', 'after');
      await until(() => got.messages.length === 2, 'the message published after the restart', 20_000);
      assert.deepEqual(got.messages, [['before'], ['after']]);
      assert.equal(await publisher.hget('t', 'during'), 'queued while down');
      assert.ok(events.includes('disconnect') && events.includes('reconnecting') && events.includes('reconnect'), events.join(','));
      await sub.unsubscribe();
      assert.equal(await got.ended, undefined);
    } finally {
      await kv.close();
      await publisher.close();
      await server.stop('SIGKILL');
    }
    assert.equal(events.at(-1), 'close');
  });

  test('with reconnect off, losing the server fails the subscription with ConnectionClosedError', TIMEOUT, async () => {
    const server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0']);
    const kv = await browser.connect({ url: wsUrl(server), WebSocket: webSocketClass(), reconnect: false });
    const got = drain(await kv.subscribe('gone'));
    await server.stop('SIGKILL');
    const err = await got.ended;
    assert.ok(err instanceof browser.ConnectionClosedError, String(err));
    await until(() => kv.state === 'closed', 'the client to close');
    await assert.rejects(kv.hget('t', 'k'), browser.ConnectionClosedError);
    await kv.close();
  });
});

describe('protokv/browser timeouts and abort signals', () => {
  let silent: WebSocketServer;
  let silentUrl: string;
  let mute: net.Server;
  let muteUrl: string;
  const muteSockets = new Set<net.Socket>();
  before(async () => {
    // Completes the WebSocket handshake, then never answers anything.
    silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(silent, 'listening');
    silentUrl = `ws://127.0.0.1:${(silent.address() as AddressInfo).port}/ws`;
    // Accepts TCP connections and never answers the upgrade request.
    mute = net.createServer((socket) => {
      muteSockets.add(socket);
      socket.on('close', () => muteSockets.delete(socket));
    });
    mute.listen(0, '127.0.0.1');
    await once(mute, 'listening');
    muteUrl = `ws://127.0.0.1:${(mute.address() as AddressInfo).port}/ws`;
  });
  after(() => {
    for (const client of silent.clients) client.terminate();
    silent.close();
    for (const socket of muteSockets) socket.destroy();
    mute.close();
  });

  test('requests time out, per call and by default; an abort signal aborts', TIMEOUT, async () => {
    const kv = await browser.connect({ url: silentUrl, WebSocket: webSocketClass(), requestTimeoutMs: 300, closeTimeoutMs: 200, reconnect: false });
    await assert.rejects(kv.hget('t', 'k'), (e: Error) => e instanceof browser.TimeoutError && /HGET got no answer within 300 ms/.test(e.message));
    await assert.rejects(kv.hget('t', 'k', { timeoutMs: 50 }), (e: Error) => e instanceof browser.TimeoutError && (e as BrowserClient.TimeoutError).timeoutMs === 50);
    const controller = new AbortController();
    const aborted = kv.hset('t', 'k', 'v', { signal: controller.signal, timeoutMs: 0 });
    controller.abort(new Error('user gave up'));
    await assert.rejects(aborted, (e: Error) => e instanceof browser.AbortError && (e.cause as Error).message === 'user gave up');
    await kv.close();
    assert.equal(kv.state, 'closed');
  });

  test('a server that never answers the upgrade: connecting times out, or is abandoned by its signal', TIMEOUT, async () => {
    await assert.rejects(
      browser.connect({ url: muteUrl, WebSocket: webSocketClass(), connectTimeoutMs: 300 }),
      (e: Error) => e instanceof browser.TimeoutError && /300 ms/.test(e.message),
    );
    const controller = new AbortController();
    const connecting = browser.connect({ url: muteUrl, WebSocket: webSocketClass(), signal: controller.signal, connectTimeoutMs: 60_000 });
    controller.abort();
    await assert.rejects(connecting, (e: Error) => e instanceof browser.AbortError || e instanceof browser.ConnectionClosedError);
  });

  test('nothing listening: ConnectionClosedError, never a raw socket error', async () => {
    const closed = net.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await assert.rejects(browser.connect({ url: `ws://127.0.0.1:${port}/ws`, WebSocket: webSocketClass(), reconnect: false }), browser.ConnectionClosedError);
  });
});

describe('protokv serve: the Origin rule on /ws', () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--http-allowed-origins', 'https://admin.example.com']);
  });
  after(() => server.stop());

  const tryOrigin = async (origin: string | undefined): Promise<string> => {
    try {
      const kv = await browser.connect({ url: wsUrl(server), WebSocket: webSocketClass(origin === undefined ? {} : { origin }), reconnect: false });
      await kv.hexist('t', 'k');
      await kv.close();
      return 'connected';
    } catch (err) {
      return `${(err as Error).name}: ${(err as Error).message}`;
    }
  };

  test("the console's own origin, a listed one and programs without Origin get in; another site is refused with 403", async () => {
    assert.equal(await tryOrigin(server.http), 'connected');
    assert.equal(await tryOrigin('https://admin.example.com'), 'connected');
    assert.equal(await tryOrigin(undefined), 'connected');
    assert.match(await tryOrigin('https://evil.example'), /^ConnectionClosedError: cannot open a WebSocket to .*403.*http\.allowed_origins/s);
    const samples = parseExposition((await get(server.http!, '/metrics')).body);
    assert.ok((valueOf(samples, 'protokv_connections_rejected_total', { reason: 'origin' }) ?? 0) >= 1);
  });
});

describe('protokv serve: /ws over HTTPS with client certificates', () => {
  let tls: TlsFixture;
  let server: ServerProcess;
  before(async () => {
    tls = await makeTlsFixture();
    const f = tls.files;
    server = await startServerProcess(['--memory', '--listen', '127.0.0.1:0', '--tls-cert', f.server, '--tls-key', f.serverKey, '--tls-client-ca', f.ca]);
  });
  after(async () => {
    await server.stop();
    await tls.cleanup();
  });

  test('wss with a client certificate works; without one the connection is refused', async () => {
    assert.match(server.http!, /^https:/);
    const url = wsUrl(server);
    assert.match(url, /^wss:/);
    const { caCert, clientCert, clientKey } = tls.pems;
    const kv = await browser.connect({ url, WebSocket: webSocketClass({ ca: caCert, cert: clientCert, key: clientKey }) });
    await kv.hset('secure', 'k', 42n);
    assert.equal(await kv.hget('secure', 'k'), 42n);
    await kv.close();
    await assert.rejects(browser.connect({ url, WebSocket: webSocketClass({ ca: caCert }), reconnect: false }), browser.ConnectionClosedError);
  });
});
