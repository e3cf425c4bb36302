/**
 * Read your writes (SPEC 1.6) over real sockets on every store: a request sees every earlier
 * request of its stream, pipelined or not, and every write acknowledged to anyone before it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CommandRequest, CommandResponse } from '../src/protocol/generated/abi.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue, pairsToMap, type KvValue } from '../src/protocol/values.js';
import { encodeFrame } from '../src/codec/frame.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { RawPeer, startServer, type Running } from './helpers/server.js';
import { STORE_KINDS, type StoreFixture } from './helpers/stores.js';

type State = Map<string, KvValue>;

/** The writes: each sent right before a read on one stream, from the state `before` to the state it leaves. */
const WRITES: Record<string, { before: [string, KvValue][]; write: (t: string) => CommandRequest; after: [string, KvValue][] }> = {
  HSET: { before: [['k0', 'old0']], write: (t) => requests.hset(t, 'k1', 'new1'), after: [['k0', 'old0'], ['k1', 'new1']] },
  HMSET: {
    before: [['k0', 'old0'], ['k1', 'old1']],
    write: (t) => requests.hmset(t, [['k1', 'new1'], ['k2', 2n]]),
    after: [['k0', 'old0'], ['k1', 'new1'], ['k2', 2n]],
  },
  HDEL: { before: [['k0', 'old0'], ['k1', 'old1']], write: (t) => requests.hdel(t, 'k1'), after: [['k0', 'old0']] },
  HMDEL: { before: [['k0', 'old0'], ['k1', 'old1'], ['k2', 'old2']], write: (t) => requests.hmdel(t, ['k1', 'k2']), after: [['k0', 'old0']] },
  HDROP: { before: [['k0', 'old0'], ['k1', 'old1']], write: (t) => requests.hdrop(t), after: [] },
};

const KEYS = ['k0', 'k1', 'k2'];

/** The reads: the request, and a check of its response against the state the write left. */
const READS: Record<string, { read: (t: string) => CommandRequest; check: (r: CommandResponse, state: State, t: string) => void }> = {
  HGET: {
    read: (t) => requests.hget(t, 'k1'),
    check: (r, state) => {
      if (state.has('k1')) {
        assert.equal(r.status, 200, r.message);
        assert.deepEqual(r.values.map(fromValue), [state.get('k1')]);
      } else assert.equal(r.status, 404);
    },
  },
  HMGET: { read: (t) => requests.hmget(t, KEYS), check: (r, state) => assert.deepEqual(r.values.map(fromValue), KEYS.map((k) => state.get(k) ?? null)) },
  HGETALL: { read: (t) => requests.hgetall(t), check: (r, state) => assert.deepEqual(pairsToMap(r.pairs), state) },
  HEXIST: { read: (t) => requests.hexist(t, 'k1'), check: (r, state) => assert.deepEqual(r.values.map(fromValue), [state.has('k1')]) },
  HMEXIST: { read: (t) => requests.hmexist(t, KEYS), check: (r, state) => assert.deepEqual(r.values.map(fromValue), KEYS.map((k) => state.has(k))) },
  HLEN: { read: (t) => requests.hlen(t), check: (r, state) => assert.deepEqual(r.values.map(fromValue), [BigInt(state.size)]) },
  HSCAN: {
    read: (t) => requests.hscan(t, '', 10),
    check: (r, state) => {
      assert.deepEqual(r.values.map(fromValue), ['']);
      assert.deepEqual(pairsToMap(r.pairs), state);
    },
  },
  TABLES: {
    read: () => requests.tables('', 10_000),
    check: (r, state, t) => {
      const listed = r.pairs.find((p) => p.key === t);
      assert.deepEqual(listed === undefined ? undefined : fromValue(listed.value), state.size === 0 ? undefined : BigInt(state.size));
    },
  },
};

/** Sends every request in one socket write, then collects the responses. */
async function pipeline(peer: RawPeer, reqs: CommandRequest[]): Promise<CommandResponse[]> {
  peer.write(Buffer.concat(reqs.map((r) => encodeFrame(encodeRequest(r)))));
  return peer.responses(reqs.length);
}

for (const [kind, open] of Object.entries(STORE_KINDS)) {
  describe(`read your writes on the ${kind} store, over TCP`, () => {
    let fixture: StoreFixture;
    let running: Running;
    let peer: RawPeer;
    before(async () => {
      fixture = await open();
      running = await startServer({ store: fixture.store });
      peer = await RawPeer.connect(running.port);
    });
    after(async () => {
      peer.destroy();
      await running.close();
      await fixture.cleanup();
    });

    for (const [writeName, w] of Object.entries(WRITES)) {
      test(`${writeName} then each read, pipelined on one stream`, async () => {
        for (const [readName, r] of Object.entries(READS)) {
          const table = `${writeName}-${readName}`;
          const [setup] = await pipeline(peer, [requests.hmset(table, w.before)]);
          assert.equal(setup.status, 200, setup.message);
          const [written, read] = await pipeline(peer, [w.write(table), r.read(table)]);
          assert.equal(written.status, 200, `${writeName}: ${written.message}`);
          assert.ok(read.status === 200 || read.status === 404, `${readName}: ${read.message}`);
          r.check(read, new Map(w.after), table);
        }
      });
    }

    test('200 pipelined HSETs then 200 HGETs are answered in order, each HGET seeing its HSET', async () => {
      const n = 200;
      const reqs = [
        ...Array.from({ length: n }, (_, i) => requests.hset('burst', `k${i}`, BigInt(i))),
        ...Array.from({ length: n }, (_, i) => requests.hget('burst', `k${i}`)),
        requests.hlen('burst'),
      ];
      const responses = await pipeline(peer, reqs);
      for (let i = 0; i < n; i++) {
        assert.equal(responses[i].status, 200);
        assert.deepEqual(responses[i].values.map(fromValue), [null], `HSET ${i}`);
        assert.equal(responses[n + i].status, 200, `HGET ${i}: ${responses[n + i].message}`);
        assert.deepEqual(responses[n + i].values.map(fromValue), [BigInt(i)], `HGET ${i}`);
      }
      assert.deepEqual(responses[2 * n].values.map(fromValue), [BigInt(n)]);
    });

    test('interleaved writes and reads of one key see each write in turn', async () => {
      const reqs: CommandRequest[] = [];
      for (let i = 0; i < 100; i++) reqs.push(requests.hset('turns', 'k', BigInt(i)), requests.hget('turns', 'k'));
      reqs.push(requests.hdel('turns', 'k'), requests.hexist('turns', 'k'), requests.hmset('turns', [['k', 'x']]), requests.hgetall('turns'));
      const responses = await pipeline(peer, reqs);
      for (let i = 0; i < 100; i++) {
        assert.deepEqual(responses[2 * i].values.map(fromValue), [i === 0 ? null : BigInt(i - 1)]);
        assert.deepEqual(responses[2 * i + 1].values.map(fromValue), [BigInt(i)]);
      }
      assert.deepEqual(responses[200].values.map(fromValue), [99n]);
      assert.deepEqual(responses[201].values.map(fromValue), [false]);
      assert.deepEqual(pairsToMap(responses[203].pairs), new Map([['k', 'x']]));
    });

    test('a write acknowledged on one connection is seen by the next request on another', async () => {
      const other = await RawPeer.connect(running.port);
      try {
        for (let i = 0; i < 20; i++) {
          const [ack] = await pipeline(peer, [requests.hmset('shared', [[`k${i}`, BigInt(i)], ['last', BigInt(i)]])]);
          assert.equal(ack.status, 200);
          const [get, len, scan] = await pipeline(other, [requests.hget('shared', 'last'), requests.hlen('shared'), requests.hscan('shared', '', 100)]);
          assert.deepEqual(get.values.map(fromValue), [BigInt(i)]);
          assert.deepEqual(len.values.map(fromValue), [BigInt(i + 2)]);
          assert.equal(scan.pairs.length, i + 2);
        }
        const [dropped] = await pipeline(other, [requests.hdrop('shared')]);
        assert.deepEqual(dropped.values.map(fromValue), [21n]);
        const [gone] = await pipeline(peer, [requests.hgetall('shared')]);
        assert.deepEqual(gone.pairs, []);
      } finally {
        other.destroy();
      }
    });
  });
}
