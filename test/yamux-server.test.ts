/** The server with `mux: 'yamux'`: many protokv streams on one connection (SPEC 1.6), plain and over mutual TLS. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { Channel } from '../src/client/channel.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { YamuxSession } from '../src/transport/yamux.js';
import { makeTlsFixture } from './helpers/certs.js';
import { startServer, type Running } from './helpers/server.js';

interface Setup {
  running: Running;
  dial(): Promise<Duplex>;
  cleanup(): Promise<void>;
}

const SETUPS: Record<string, () => Promise<Setup>> = {
  TCP: async () => {
    const running = await startServer({ mux: 'yamux' });
    return {
      running,
      dial: async () => {
        const s = net.connect({ host: '127.0.0.1', port: running.port });
        await once(s, 'connect');
        return s;
      },
      cleanup: () => running.close(),
    };
  },
  'mutual TLS': async () => {
    const fixture = await makeTlsFixture();
    const { pems } = fixture;
    const running = await startServer({ mux: 'yamux', tls: { cert: pems.serverCert, key: pems.serverKey, clientCa: pems.caCert } });
    return {
      running,
      dial: async () => {
        const s = tls.connect({ host: '127.0.0.1', port: running.port, ca: pems.caCert, cert: pems.clientCert, key: pems.clientKey });
        await once(s, 'secureConnect');
        return s;
      },
      cleanup: async () => {
        await running.close();
        await fixture.cleanup();
      },
    };
  },
};

for (const [name, make] of Object.entries(SETUPS)) {
  describe(`yamux server over ${name}`, () => {
    test('200 concurrent streams on one connection mixing commands and subscriptions', async () => {
      const setup = await make();
      const session = new YamuxSession(await setup.dial(), 'client');
      try {
        const subscribers = await Promise.all(
          Array.from({ length: 50 }, async () => {
            const ch = new Channel(session.open());
            const first = await ch.request(requests.subscribe('mixed'));
            assert.equal(first.status, 200);
            const got: unknown[][] = [];
            ch.onUnsolicited = (r) => got.push(r.values.map(fromValue));
            return { ch, got };
          }),
        );
        const workers = Array.from({ length: 150 }, async (_, w) => {
          const ch = new Channel(session.open());
          const writes = Array.from({ length: 20 }, (_, i) => ch.request(requests.hset(`w${w}`, `k${i}`, BigInt(i))));
          const reads = Array.from({ length: 20 }, (_, i) => ch.request(requests.hget(`w${w}`, `k${i}`)));
          await Promise.all(writes);
          const rs = await Promise.all(reads);
          assert.deepEqual(rs.map((r) => fromValue(r.values[0])), Array.from({ length: 20 }, (_, i) => BigInt(i)));
          await ch.request(requests.publish('mixed', BigInt(w)));
          ch.end();
        });
        await Promise.all(workers);
        const deadline = Date.now() + 10_000;
        while (subscribers.some((s) => s.got.length < 150) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        for (const s of subscribers) {
          assert.equal(s.got.length, 150);
          // Each publisher's message arrives once; all subscribers see the same order.
          assert.deepEqual(s.got, subscribers[0]!.got);
        }
      } finally {
        session.destroy();
        await setup.cleanup();
      }
    });

    test('1 MiB incompressible values cross many window updates both ways', async () => {
      const setup = await make();
      const session = new YamuxSession(await setup.dial(), 'client');
      try {
        const ch = new Channel(session.open());
        const values = Array.from({ length: 4 }, () => randomBytes(1 << 20));
        await Promise.all(values.map((v, i) => ch.request(requests.hset('big', `v${i}`, v))));
        const back = await Promise.all(values.map((_, i) => ch.request(requests.hget('big', `v${i}`))));
        back.forEach((r, i) => assert.ok(values[i]!.equals(fromValue(r.values[0]) as Buffer), `value ${i}`));
      } finally {
        session.destroy();
        await setup.cleanup();
      }
    });

    test('shutdown sends go-away, answers what was sent, and ends subscriptions', async () => {
      const setup = await make();
      const session = new YamuxSession(await setup.dial(), 'client');
      session.on('error', () => {});
      const goAway = once(session, 'goaway');
      const sub = new Channel(session.open());
      await sub.request(requests.subscribe('bye'));
      const ch = new Channel(session.open());
      const inflight = Array.from({ length: 200 }, (_, i) => ch.request(requests.hset('t', `k${i}`, 'v')));
      await inflight[0]; // the server has the stream and is answering
      const closing = setup.cleanup();
      const [code] = (await goAway) as [number];
      assert.equal(code, 0);
      assert.throws(() => session.open(), /go-away|GO_AWAY/i);
      // Requests the server had read are answered; any still in flight fail cleanly, never out of order.
      const results = await Promise.allSettled(inflight);
      const answered = results.findIndex((r) => r.status === 'rejected');
      const prefix = answered === -1 ? results : results.slice(0, answered);
      assert.ok(prefix.every((r) => r.status === 'fulfilled' && r.value.status === 200));
      const failures = results.slice(prefix.length).map((r) => (r.status === 'rejected' ? String(r.reason) : `answered ${r.value.status}`));
      assert.ok(failures.every((f) => /closed|reset/.test(f)), failures.slice(0, 3).join('; '));
      await sub.closed;
      await closing;
      session.destroy();
    });
  });
}
