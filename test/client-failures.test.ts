/**
 * The client against servers that misbehave: a black hole that accepts and never answers (plain,
 * and one that never finishes the TLS handshake), a mux mismatch, TLS set up wrong, a server
 * that drops a slow subscriber or closes idle connections. Every call ends — on time, with the
 * error class for its failure — and nothing is a raw socket error.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { connect } from '../src/client/client.js';
import { AbortError, ConnectionClosedError, SlowConsumerError, TimeoutError } from '../src/client/core/errors.js';
import type { KvValue } from '../src/protocol/values.js';
import { generateCertificates } from '../src/tls/certificates.js';
import { makeTlsFixture, type TlsFixture } from './helpers/certs.js';
import { startServer, type Running } from './helpers/server.js';
import { until } from './helpers/wait.js';

const TIMEOUT = { timeout: 60_000 };

/** A loopback listener that accepts connections, reads and discards everything, and never writes or closes. */
async function blackHole(): Promise<{ port: number; sockets: Set<net.Socket>; accepted(): number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const all = new Set<net.Socket>();
  // Half-open allowed: our end of stream must not make it close its side either.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    all.add(socket);
    socket.on('data', () => {});
    socket.on('error', () => {});
    // `sockets` holds the connections the client still has open (it never sees our end).
    socket.on('end', () => sockets.delete(socket));
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    accepted: () => all.size,
    close: () => {
      server.close();
      for (const s of all) s.destroy();
    },
  };
}

describe('a server that accepts and never answers', () => {
  let hole: Awaited<ReturnType<typeof blackHole>>;
  before(async () => {
    hole = await blackHole();
  });
  after(() => hole.close());

  test('requests time out, per call and by default; an abort signal aborts; close() ends by its time limit', TIMEOUT, async () => {
    const kv = await connect({ host: '127.0.0.1', port: hole.port, requestTimeoutMs: 300, closeTimeoutMs: 300, reconnect: false });
    await assert.rejects(kv.hget('t', 'k'), (e: Error) => e instanceof TimeoutError && e.timeoutMs === 300 && /HGET got no answer within 300 ms/.test(e.message));
    await assert.rejects(kv.hget('t', 'k', { timeoutMs: 50 }), (e: Error) => e instanceof TimeoutError && e.timeoutMs === 50);
    const controller = new AbortController();
    const aborted = kv.hset('t', 'k', 'v', { signal: controller.signal, timeoutMs: 0 });
    controller.abort(new Error('user gave up'));
    await assert.rejects(aborted, (e: Error) => e instanceof AbortError && (e.cause as Error).message === 'user gave up');
    await assert.rejects(kv.hget('t', 'k', { signal: AbortSignal.abort() }), AbortError);
    kv.close().catch(() => {});
    await kv.close();
    assert.equal(kv.state, 'closed');
    await assert.rejects(kv.hget('t', 'k'), (e: Error) => e instanceof ConnectionClosedError && /client is closed \(close\(\) was called\)/.test(e.message));
  });

  test('close() gives up waiting for an answer after its time limit and fails the request', TIMEOUT, async () => {
    const kv = await connect({ host: '127.0.0.1', port: hole.port, requestTimeoutMs: 0, closeTimeoutMs: 200 });
    const pending = kv.hget('t', 'k');
    await kv.close();
    await assert.rejects(pending, (e: Error) => e instanceof ConnectionClosedError && /close\(\) stopped waiting after 200 ms/.test(e.message));
  });

  test('a connection that answers nothing for a whole request timeout is replaced', TIMEOUT, async () => {
    const kv = await connect({ host: '127.0.0.1', port: hole.port, requestTimeoutMs: 200, reconnect: { initialDelayMs: 10, maxDelayMs: 50 } });
    let reconnects = 0;
    kv.on('reconnect', () => reconnects++);
    const open = hole.sockets.size;
    const accepted = hole.accepted();
    await assert.rejects(kv.hget('t', 'k'), TimeoutError);
    await until(() => reconnects >= 1, 'a fresh connection');
    assert.equal(hole.accepted(), accepted + 1, 'a new connection was opened');
    await until(() => hole.sockets.size === open, 'the silent one to be closed');
    await kv.close({ timeoutMs: 100 });
  });

  test('subscribing times out and leaves nothing behind', TIMEOUT, async () => {
    const kv = await connect({ host: '127.0.0.1', port: hole.port, requestTimeoutMs: 200, closeTimeoutMs: 100 });
    const open = hole.sockets.size;
    await assert.rejects(kv.subscribe('t'), (e: Error) => e instanceof TimeoutError && /SUBSCRIBE "t"/.test(e.message));
    await until(() => hole.sockets.size === open, 'the subscription connection to be closed');
    await kv.close();
  });

  test('a server that never finishes the TLS handshake: connect times out naming the handshake', TIMEOUT, async () => {
    await assert.rejects(
      connect({ host: '127.0.0.1', port: hole.port, tls: true, connectTimeoutMs: 300 }),
      (e: Error) => e instanceof TimeoutError && /timed out after 300 ms/.test(e.message) && /TLS handshake/.test(e.message),
    );
    const controller = new AbortController();
    const connecting = connect({ host: '127.0.0.1', port: hole.port, tls: true, signal: controller.signal });
    controller.abort();
    await assert.rejects(connecting, AbortError);
  });

  test('a yamux client against a server that does not speak yamux is told so', TIMEOUT, async () => {
    await assert.rejects(
      connect({ host: '127.0.0.1', port: hole.port, mux: 'yamux', connectTimeoutMs: 300 }),
      (e: Error) => e instanceof TimeoutError && /--mux yamux/.test(e.message),
    );
  });
});

describe('mux mismatch with a real server', () => {
  test('a plain client of a yamux server gets a hint in its timeout', TIMEOUT, async () => {
    const running = await startServer({ mux: 'yamux' });
    try {
      const kv = await connect({ ...running.clientOptions, requestTimeoutMs: 300, closeTimeoutMs: 100 });
      await assert.rejects(kv.hget('t', 'k'), (e: Error) => e instanceof TimeoutError && /connect with mux: 'yamux'/.test(e.message));
      await kv.close();
    } finally {
      await running.close();
    }
  });
});

describe('TLS set up wrong is reported at connect, with a hint', () => {
  let fixture: TlsFixture;
  let running: Running;
  before(async () => {
    fixture = await makeTlsFixture();
    const { pems } = fixture;
    running = await startServer({ tls: { cert: pems.serverCert, key: pems.serverKey, clientCa: pems.caCert } });
  });
  after(async () => {
    await running.close();
    await fixture.cleanup();
  });
  const base = () => ({ host: '127.0.0.1', port: running.port, reconnect: false });

  test('no client certificate', async () => {
    await assert.rejects(connect({ ...base(), tls: { ca: fixture.pems.caCert } }), (e: Error) => {
      return e instanceof ConnectionClosedError && /requires a client certificate/.test(e.message) && !e.message.includes('\n');
    });
  });

  test('a client certificate from a CA the server does not trust', async () => {
    const other = await generateCertificates();
    await assert.rejects(
      connect({ ...base(), tls: { ca: fixture.pems.caCert, cert: other.clientCert, key: other.clientKey } }),
      (e: Error) => e instanceof ConnectionClosedError && /refused the client certificate/.test(e.message),
    );
  });

  test('a server certificate from a CA the client does not trust', async () => {
    const other = await generateCertificates();
    const { pems } = fixture;
    await assert.rejects(
      connect({ ...base(), tls: { ca: other.caCert, cert: pems.clientCert, key: pems.clientKey } }),
      (e: Error) => e instanceof ConnectionClosedError && /tls\.ca \(--tls-ca\)/.test(e.message),
    );
  });

  test('plaintext to the TLS port', async () => {
    const kv = await connect(base());
    await assert.rejects(kv.hget('t', 'k'), (e: Error) => e instanceof ConnectionClosedError && /expects TLS/.test(e.message));
    await kv.close();
  });

  test('TLS to a plaintext port', async () => {
    const plain = await startServer();
    try {
      await assert.rejects(
        connect({ host: '127.0.0.1', port: plain.port, tls: { ca: fixture.pems.caCert } }),
        (e: Error) => e instanceof ConnectionClosedError && /does not speak TLS/.test(e.message),
      );
    } finally {
      await plain.close();
    }
  });

  test('any tls.connect option passes through', async () => {
    const { pems } = fixture;
    let checked = 0;
    const kv = await connect({
      ...base(),
      tls: { ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey, servername: 'localhost', checkServerIdentity: () => void checked++ },
    });
    assert.equal(await kv.hset('t', 'k', 'v'), undefined);
    assert.equal(checked, 1);
    await kv.close();
  });
});

/** Reads a subscription into an array; resolves with the error that ended it (or undefined). */
function reader(sub: AsyncIterable<KvValue[]>, got: KvValue[][]): Promise<Error | undefined> {
  return (async () => {
    try {
      for await (const m of sub) got.push(m);
      return undefined;
    } catch (err) {
      return err as Error;
    }
  })();
}

for (const mux of ['none', 'yamux'] as const) {
  describe(`abnormal subscription endings (mux ${mux})`, () => {
    test('a subscriber the server drops for falling behind throws SlowConsumerError after what it received', TIMEOUT, async () => {
      const running = await startServer({ mux, subscriberBacklogMessages: 50, subscriberBacklogBytes: 1 << 20 }, { mux });
      try {
        const kv = await running.client({ subscriptionBufferSize: 8 });
        const publisher = await running.client();
        const sub = await kv.subscribe('flood');
        // Incompressible, so the socket buffers fill after a few thousand messages.
        const payload = randomBytes(16 * 1024);
        // Nobody reads: the client's buffer fills, it stops reading, the server's backlog grows.
        let sent = 0;
        while (sent < 50_000 && running.service.pubsub.size === 1) {
          await Promise.all(Array.from({ length: 50 }, (_, j) => publisher.publish('flood', BigInt(sent + j), payload)));
          sent += 50;
        }
        assert.equal(running.service.pubsub.size, 0, 'the server dropped the subscriber');
        const got: KvValue[][] = [];
        const err = await reader(sub, got);
        assert.ok(err instanceof SlowConsumerError, String(err));
        assert.ok(got.length >= 8, `yielded what it had first (${got.length})`);
        assert.ok(got.every((m, i) => m[0] === BigInt(i)), 'in order');
        await kv.close();
        await publisher.close();
      } finally {
        await running.close();
      }
    });

    test('UNSUBSCRIBE from another client ends the loop normally', TIMEOUT, async () => {
      const running = await startServer({ mux }, { mux });
      try {
        const kv = await running.client();
        const other = await running.client();
        const sub = await kv.subscribe('bye');
        const got: KvValue[][] = [];
        const ended = reader(sub, got);
        await other.publish('bye', 'one');
        await until(() => got.length === 1, 'the message');
        await other.unsubscribe('bye', sub.id);
        assert.equal(await ended, undefined);
        assert.equal(sub.resubscribed, 0);
        await kv.close();
        await other.close();
      } finally {
        await running.close();
      }
    });
  });
}

describe('idle timeouts', () => {
  test('leaving a loop after the command connection idled out does not throw; commands reconnect', TIMEOUT, async () => {
    const running = await startServer({ idleTimeoutMs: 500 });
    try {
      const kv = await running.client({ reconnect: { initialDelayMs: 10, maxDelayMs: 100 } });
      let disconnects = 0;
      kv.on('disconnect', () => disconnects++);
      const sub = await kv.subscribe('quiet');
      await until(() => disconnects >= 1, 'the idle command connection to be closed by the server', 20_000);
      // The subscription's own connection idles out too and is renewed: messages published while
      // it is being renewed are lost, so publish until one arrives.
      let received: KvValue[] | undefined;
      const reading = (async () => {
        for await (const m of sub) {
          received = m;
          break;
        }
      })();
      const publisher = await running.client();
      for (let i = 0; i < 1000 && received === undefined; i++) {
        await publisher.publish('quiet', 'hello');
        await new Promise((r) => setTimeout(r, 20));
      }
      await reading;
      assert.deepEqual(received, ['hello']);
      assert.equal(await kv.hset('t', 'k', 'v'), undefined);
      await kv.close();
      await publisher.close();
    } finally {
      await running.close();
    }
  });
});

describe('subscriptions and abort signals', () => {
  test('aborting ends the subscription: the iterator throws AbortError', TIMEOUT, async () => {
    const running = await startServer();
    try {
      const kv = await running.client();
      const controller = new AbortController();
      const sub = await kv.subscribe('sig', { signal: controller.signal });
      const got: KvValue[][] = [];
      const ended = reader(sub, got);
      await kv.publish('sig', 1n);
      await until(() => got.length === 1, 'the message');
      controller.abort();
      assert.ok((await ended) instanceof AbortError);
      await until(() => running.service.pubsub.size === 0, 'the server to forget it');
      await kv.close();
    } finally {
      await running.close();
    }
  });
});
