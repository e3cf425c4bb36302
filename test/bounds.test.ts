/**
 * Resource bounds (SPEC 4), each reproduced the way a hostile client would hit it: responses
 * over the maximum frame size, output that is never read, input that never completes, requests
 * that would hold the event loop. On both stores and over TCP, mutual TLS and yamux where it
 * applies. Behaviour only: no timing is asserted (see bounds-memory.test.ts for memory).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { frameHeader as header, encodeFrame } from '../src/codec/frame.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { Service } from '../src/service/service.js';
import { MemoryStore } from '../src/storage/memory.js';
import { openSocket } from '../src/client/socket.js';
import { YamuxSession } from '../src/transport/yamux.js';
import { capturingLogger } from './helpers/logs.js';
import { RawPeer, type Running } from './helpers/server.js';
import { STORE_KINDS, type StoreFixture } from './helpers/stores.js';
import { rawStream, TRANSPORTS_WITH } from './helpers/transports.js';
import { until, untilSettled } from './helpers/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Fills `table` with `count` pairs `k00000…` → a string of `valueLength` characters. */
async function fill(running: Running, table: string, count: number, valueLength: number): Promise<void> {
  const kv = await running.client();
  const value = 'v'.repeat(valueLength);
  for (let start = 0; start < count; start += 1000) {
    const pairs: [string, string][] = [];
    for (let i = start; i < Math.min(count, start + 1000); i++) pairs.push([`k${String(i).padStart(5, '0')}`, value]);
    await kv.hmset(table, pairs);
  }
  await kv.close();
}

const frameOf = (request: Parameters<typeof encodeRequest>[0]): Buffer => encodeFrame(encodeRequest(request));

for (const [storeName, makeStore] of Object.entries(STORE_KINDS)) {
  for (const [transport, start] of Object.entries(TRANSPORTS_WITH)) {
    describe(`responses past the maximum frame size (${storeName} store, ${transport})`, () => {
      let fixture: StoreFixture;
      let running: Running;
      const max = 256 * KiB;
      before(async () => {
        fixture = await makeStore();
        running = await start({ store: fixture.store, maxFrameSize: max });
        const kv = await running.client();
        await kv.hset('t', 'big', randomBytes(100 * KiB));
        await kv.close();
        await fill(running, 'wide', 8000, 40);
        await fill(running, 'fits', 5000, 25);
      });
      after(async () => {
        await running.close();
        await fixture.cleanup();
      });

      test('HMGET naming a big value a thousand times is a 413 that names HSCAN; the stream stays usable', async () => {
        const peer = await rawStream(running);
        try {
          peer.send(requests.hmget('t', Array<string>(1000).fill('big')));
          peer.send(requests.hmget('t', ['big', 'missing', 'big']));
          peer.send(requests.hexist('t', 'big'));
          const [tooLarge, fits, exists] = await peer.responses(3);
          assert.equal(tooLarge!.status, 413);
          assert.equal(tooLarge!.message, `Response too large: HMGET of 1000 keys of table t exceeds the maximum frame size of ${max} bytes (use HSCAN)`);
          assert.deepEqual(tooLarge!.values, []);
          assert.equal(fits!.status, 200);
          assert.equal(fits!.values.length, 3);
          assert.equal((fromValue(fits!.values[0]) as Buffer).length, 100 * KiB);
          assert.equal(fromValue(fits!.values[1]), null);
          assert.equal(exists!.status, 200);
        } finally {
          peer.destroy();
        }
      });

      test('HGETALL of a table larger than the maximum is a 413; one just under it comes whole', async () => {
        const peer = await rawStream(running);
        try {
          peer.send(requests.hgetall('wide'));
          peer.send(requests.hgetall('fits'));
          const [tooLarge, whole] = await peer.responses(2);
          assert.equal(tooLarge!.status, 413);
          assert.match(tooLarge!.message, /^Response too large: HGETALL of table wide exceeds the maximum frame size of 262144 bytes \(use HSCAN\)$/);
          assert.equal(whole!.status, 200);
          assert.equal(whole!.pairs.length, 5000, 'more pairs than one slice gathers: gathered over several turns');
          assert.equal(new Set(whole!.pairs.map((p) => p.key)).size, 5000);
        } finally {
          peer.destroy();
        }
      });

      test('a stored value larger than the maximum is a 413 for HGET, not an oversize frame', async () => {
        await fixture.store.set('t', 'huge', { value: { $case: 'binary', value: randomBytes(max + 1) } });
        const peer = await rawStream(running, max);
        try {
          peer.send(requests.hget('t', 'huge'));
          peer.send(requests.hexist('t', 'huge'));
          const [tooLarge, exists] = await peer.responses(2);
          assert.equal(tooLarge!.status, 413);
          assert.match(tooLarge!.message, /^Response too large: a response of \d+ bytes exceeds the maximum frame size of 262144 bytes \(use HSCAN\)$/);
          assert.equal(exists!.status, 200);
        } finally {
          peer.destroy();
        }
      });

      test('a big HGETALL holds its stream: a write pipelined behind it is not in its answer', async () => {
        const peer = await rawStream(running);
        try {
          peer.send(requests.hgetall('fits'));
          peer.send(requests.hset('fits', 'zz-late', 'late'));
          const [all, set] = await peer.responses(2);
          assert.equal(all!.status, 200);
          assert.equal(all!.pairs.length, 5000);
          assert.ok(!all!.pairs.some((p) => p.key === 'zz-late'), 'the later write is not seen by the earlier read');
          assert.equal(set!.status, 200);
          assert.equal(fromValue(set!.values[0]), null, 'the write ran, after the read');
        } finally {
          await fixture.store.del('fits', 'zz-late');
          peer.destroy();
        }
      });
    });
  }
}

describe('a big HGETALL is gathered over several turns of the event loop', () => {
  for (const [storeName, makeStore] of Object.entries(STORE_KINDS)) {
    test(`${storeName} store: other work runs while it is gathered`, async () => {
      const fixture = await makeStore();
      const running = await TRANSPORTS_WITH.tcp!({ store: fixture.store });
      try {
        await fill(running, 'big', 20_000, 10);
        const kv = await running.client();
        let turns = 0;
        let done = false;
        const tick = (): void => {
          turns++;
          if (!done) setImmediate(tick);
        };
        setImmediate(tick);
        const all = await kv.hgetall('big');
        done = true;
        assert.equal(all.size, 20_000);
        assert.ok(turns >= 4, `only ${turns} turns of the event loop while 20,000 pairs were gathered`);
        await kv.close();
      } finally {
        await running.close();
        await fixture.cleanup();
      }
    });
  }
});

for (const [transport, start] of Object.entries(TRANSPORTS_WITH)) {
  describe(`output buffer limit in bytes (${transport})`, () => {
    test('a client that never reads stops being served past the limit, others are not held up, and nothing is lost', async () => {
      const service = new Service({ store: new MemoryStore() });
      let executed = 0;
      service.addHook('onRequestReceived', () => executed++);
      const running = await start({ service, maxOutputBuffer: 256 * KiB, maxFrameSize: MiB });
      const big = randomBytes(64 * KiB);
      const count = 300;
      const peer = await rawStream(running);
      try {
        const kv = await running.client();
        await kv.hset('t', 'big', big);
        for (let i = 0; i < 10; i++) await kv.hset('t', `i${i}`, BigInt(i));
        peer.socket.pause();
        executed = 0;
        // Requests alternate between the big value and a small one whose number shows the order.
        const frames: Buffer[] = [];
        for (let i = 0; i < count; i++) frames.push(frameOf(requests.hget('t', 'big')), frameOf(requests.hget('t', `i${i % 10}`)));
        peer.socket.write(Buffer.concat(frames));
        await untilSettled(() => executed, 'the server to stop executing the requests of the client that does not read', 30_000);
        assert.ok(executed < count, `${executed} of ${2 * count} requests executed for a client that reads nothing`);
        assert.equal(await kv.hexist('t', 'big'), true, 'another client is served meanwhile');
        peer.socket.resume();
        const answers = await peer.responses(2 * count);
        for (let i = 0; i < count; i++) {
          assert.equal(answers[2 * i]!.status, 200);
          assert.equal(fromValue(answers[2 * i + 1]!.values[0]), BigInt(i % 10), `answer ${2 * i + 1} in order`);
        }
        await kv.close();
      } finally {
        peer.destroy();
        await running.close();
      }
    });
  });
}

describe('output buffer limit per yamux stream', () => {
  test('a stream nobody reads is stopped; another stream of the same connection is still served', async () => {
    const running = await TRANSPORTS_WITH.yamux!({ maxOutputBuffer: 128 * KiB });
    const session = new YamuxSession(await openSocket(running.clientOptions), 'client', { keepAliveMs: false });
    session.on('error', () => {});
    try {
      const kv = await running.client();
      await kv.hset('t', 'big', randomBytes(64 * KiB));
      const stuck = session.open();
      stuck.on('error', () => {});
      stuck.pause();
      stuck.write(Buffer.concat(Array<Buffer>(500).fill(frameOf(requests.hget('t', 'big')))));
      const other = RawPeer.over<Duplex>(session.open());
      for (let i = 0; i < 20; i++) {
        other.send(requests.hexist('t', 'big'));
        assert.equal((await other.responses(1))[0]!.status, 200);
      }
      await kv.close();
    } finally {
      session.destroy();
      await running.close();
    }
  });
});

for (const [transport, start] of Object.entries(TRANSPORTS_WITH)) {
  describe(`input budget (${transport})`, () => {
    test('partly received frames wait for room, hold no more than the budget, and all complete', async () => {
      const running = await start({ maxFrameSize: 4 * MiB, inputBudget: 8 * MiB });
      const frames = Array.from({ length: 4 }, (_, i) => frameOf(requests.hset('t', `k${i}`, randomBytes(3 * MiB))));
      const peers: RawPeer<Duplex>[] = [];
      try {
        for (const frame of frames) {
          const peer = await rawStream(running);
          peers.push(peer);
          peer.socket.write(frame.subarray(0, MiB));
        }
        const budget = running.server.inputBudget;
        await until(() => budget.waiting >= 1, 'a stream to wait for room in the input budget', 20_000);
        assert.ok(budget.used <= 8 * MiB + 4 * 64 * KiB, `${budget.used} bytes of input held`);
        peers.forEach((peer, i) => peer.socket.write(frames[i]!.subarray(MiB)));
        const answers = await Promise.all(peers.map((p) => p.responses(1)));
        for (const [r] of answers) assert.equal(r!.status, 200);
        await until(() => budget.used === 0, 'the budget to be returned');
      } finally {
        peers.forEach((p) => p.destroy());
        await running.close();
      }
    });
  });
}

for (const [transport, start] of Object.entries(TRANSPORTS_WITH)) {
  describe(`frame time limit (${transport})`, () => {
    let running: Running;
    let lines: Record<string, unknown>[];
    before(async () => {
      const captured = capturingLogger();
      lines = captured.lines;
      running = await start({ service: new Service({ store: new MemoryStore(), logger: captured.logger }), frameTimeoutMs: 300 });
    });
    after(() => running.close());

    test('half a frame and then silence: a 503 naming the limit, then the stream is closed', async () => {
      const peer = await rawStream(running);
      const frame = frameOf(requests.hset('t', 'k', 'v'));
      peer.socket.write(frame.subarray(0, 6));
      const [r] = await peer.responses(1);
      assert.equal(r!.status, 503);
      assert.equal(r!.message, 'Service unavailable: frame not completed within 300 ms');
      await peer.closed();
      assert.ok(lines.some((l) => l.msg === 'frame not completed in time; closing the stream' && l.frameTimeoutMs === 300));
    });

    test('a frame dripped a byte at a time is cut off, however often bytes arrive', async () => {
      const peer = await rawStream(running);
      const frame = frameOf(requests.hset('t', 'k', 'x'.repeat(40)));
      let at = 0;
      const timer = setInterval(() => {
        if (at < frame.length && !peer.ended) peer.socket.write(frame.subarray(at, ++at));
      }, 30);
      try {
        const [r] = await peer.responses(1);
        assert.equal(r!.status, 503);
        await peer.closed();
        assert.ok(at < frame.length, 'closed before the frame was complete');
      } finally {
        clearInterval(timer);
      }
    });

    test('whole frames sent further apart than the limit are served: only a frame in progress is timed', async () => {
      const peer = await rawStream(running);
      try {
        for (let i = 0; i < 3; i++) {
          peer.send(requests.hexist('t', 'k'));
          assert.equal((await peer.responses(1))[0]!.status, 200);
          await new Promise((r) => setTimeout(r, 500));
        }
        assert.equal(peer.ended, false);
      } finally {
        peer.destroy();
      }
    });
  });
}

describe('slow-drip connections do not lock out new clients', () => {
  for (const [transport, start] of Object.entries(TRANSPORTS_WITH)) {
    test(`${transport}: connections dripping bytes are closed, and a new client gets in`, async () => {
      const running = await start({ maxConnections: 3, frameTimeoutMs: 300 });
      const drips: RawPeer<Duplex>[] = [];
      const frame = frameOf(requests.hexist('t', 'k'));
      try {
        // Every connection is in (handshakes can be slow) before any starts its frame and its clock.
        for (let i = 0; i < 3; i++) drips.push(await rawStream(running));
        await until(() => running.server.connectionCount === 3, 'three connections', 20_000);
        for (const peer of drips) peer.socket.write(frame.subarray(0, 1));
        let at = 1;
        const timer = setInterval(() => {
          for (const p of drips) if (!p.ended) p.socket.write(frame.subarray(at % frame.length, (at % frame.length) + 1));
          at++;
        }, 50);
        try {
          await until(() => running.server.connectionCount === 0, 'the dripping connections to be closed', 20_000);
        } finally {
          clearInterval(timer);
        }
        const kv = await running.client();
        assert.equal(await kv.hexist('t', 'k'), false);
        await kv.close();
      } finally {
        drips.forEach((p) => p.destroy());
        await running.close();
      }
    });
  }
});

describe('inflation of large payloads', () => {
  for (const [transport, start] of Object.entries(TRANSPORTS_WITH)) {
    test(`${transport}: a small frame inflating to megabytes is answered in order with the frames around it`, async () => {
      const running = await start({ maxFrameSize: 8 * MiB });
      const peer = await rawStream(running);
      try {
        const big = frameOf(requests.hset('t', 'zeros', 'z'.repeat(4 * MiB)));
        assert.ok(big.length < 64 * KiB, 'compressed to a few KiB');
        peer.send(requests.hset('t', 'zeros', 'before'));
        peer.socket.write(big);
        peer.send(requests.hget('t', 'zeros'));
        peer.socket.write(Buffer.concat([header(20, true), Buffer.alloc(20, 7)]));
        peer.send(requests.hexist('t', 'zeros'));
        const [first, set, got, badGzip, exists] = await peer.responses(5);
        assert.equal(first!.status, 200);
        assert.equal(fromValue(set!.values[0]), 'before');
        assert.equal((fromValue(got!.values[0]) as string).length, 4 * MiB);
        assert.equal(badGzip!.status, 400);
        assert.equal(exists!.status, 200);
      } finally {
        peer.destroy();
        await running.close();
      }
    });
  }
});
