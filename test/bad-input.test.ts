/** SPEC 1.4 and 4: every bad input over a real socket, and the server still answers afterwards. */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { once } from 'node:events';
import { encodeFrame } from '../src/codec/frame.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { encodeRequest } from '../src/protocol/wire.js';
import { frameHeader, RawPeer, startServer, type Running } from './helpers/server.js';

describe('bad input over TCP', () => {
  let running: Running;
  before(async () => {
    running = await startServer({ maxFrameSize: 64 * 1024 });
  });
  after(() => running.close());

  async function stillServes(): Promise<void> {
    const kv = await running.client();
    await kv.hset('alive', 'k', 'v');
    assert.equal(await kv.hget('alive', 'k'), 'v');
    await kv.close();
  }

  test('a payload that is not protobuf is a 400 and the connection stays usable', async () => {
    const peer = await RawPeer.connect(running.port);
    const junk = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    peer.write(Buffer.concat([frameHeader(junk.length), junk]));
    peer.send(requests.hset('t', 'k', 'after-junk'));
    const [bad, good] = await peer.responses(2);
    assert.equal(bad.status, 400);
    assert.match(bad.message, /not a valid CommandRequest/);
    assert.deepEqual(bad.values, []);
    assert.equal(good.status, 200);
    peer.destroy();
  });

  test('a compressed payload that is not gzip is a 400 and the connection stays usable', async () => {
    const peer = await RawPeer.connect(running.port);
    const junk = Buffer.from('definitely not gzip');
    peer.write(Buffer.concat([frameHeader(junk.length, true), junk]));
    peer.send(requests.hexist('t', 'k'));
    const [bad, good] = await peer.responses(2);
    assert.equal(bad.status, 400);
    assert.match(bad.message, /not valid gzip/);
    assert.equal(good.status, 200);
    peer.destroy();
  });

  test('a small request sent gzip-compressed is accepted', async () => {
    const peer = await RawPeer.connect(running.port);
    const gz = gzipSync(encodeRequest(requests.hset('gz', 'k', 'compressed')));
    peer.write(Buffer.concat([frameHeader(gz.length, true), gz]));
    peer.send(requests.hget('gz', 'k'));
    const [, get] = await peer.responses(2);
    assert.deepEqual(get.values.map(fromValue), ['compressed']);
    peer.destroy();
  });

  test('an empty request and a missing sub-message are 400s', async () => {
    const peer = await RawPeer.connect(running.port);
    peer.write(frameHeader(0));
    peer.write(encodeFrame(encodeRequest({ requestData: { $case: 'hset', value: { table: 't', pair: undefined } } })));
    const [empty, noPair] = await peer.responses(2);
    assert.equal(empty.status, 400);
    assert.equal(noPair.status, 400);
    peer.destroy();
  });

  test('an unknown command field is a 400', async () => {
    const peer = await RawPeer.connect(running.port);
    // Field 20, length-delimited, empty: valid protobuf that names no command we know.
    peer.write(Buffer.concat([frameHeader(3), Buffer.from([0xa2, 0x01, 0x00])]));
    const [r] = await peer.responses(1);
    assert.equal(r.status, 400);
    assert.match(r.message, /no command/);
    peer.destroy();
  });

  test('a frame over the maximum gets a 413 and the connection is closed', async () => {
    const peer = await RawPeer.connect(running.port);
    peer.send(requests.hset('t', 'before', 1n));
    peer.write(frameHeader(64 * 1024 + 1));
    const [first, tooBig] = await peer.responses(2);
    assert.equal(first.status, 200);
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.message, /Frame too large: 65537 bytes exceeds the maximum of 65536 bytes/);
    await peer.closed();
    await stillServes();
  });

  test('a gzip payload inflating past the maximum is refused with 413 and close', async () => {
    const peer = await RawPeer.connect(running.port);
    const bomb = gzipSync(Buffer.alloc(4 * 1024 * 1024));
    peer.write(Buffer.concat([frameHeader(bomb.length, true), bomb]));
    const [r] = await peer.responses(1);
    assert.equal(r.status, 413);
    await peer.closed();
    await stillServes();
  });

  test('a peer that disconnects mid-frame is cleaned up', async () => {
    const before = running.server.connectionCount;
    const peer = await RawPeer.connect(running.port);
    peer.write(Buffer.concat([frameHeader(1000), Buffer.alloc(10)]));
    peer.destroy();
    await once(peer.socket, 'close');
    for (let i = 0; i < 100 && running.server.connectionCount > before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(running.server.connectionCount, before);
    await stillServes();
  });

  test('frames split at every byte and coalesced in one write', async () => {
    const peer = await RawPeer.connect(running.port);
    const frames = Buffer.concat([
      encodeFrame(encodeRequest(requests.hset('split', 'a', 'x'.repeat(2000)))),
      encodeFrame(encodeRequest(requests.hget('split', 'a'))),
      encodeFrame(encodeRequest(requests.hexist('split', 'a'))),
    ]);
    peer.socket.setNoDelay(true);
    for (const byte of frames) {
      peer.write(Buffer.of(byte));
      await new Promise((r) => setImmediate(r));
    }
    peer.write(Buffer.concat([frames, frames]));
    const rs = await peer.responses(6);
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    assert.deepEqual(rs[1].values.map(fromValue), ['x'.repeat(2000)]);
    assert.deepEqual(rs[2].values.map(fromValue), [true]);
    peer.destroy();
  });

  test('a client that sends but never reads does not make the server buffer without bound', async () => {
    const peer = await RawPeer.connect(running.port);
    peer.socket.pause();
    const frame = encodeFrame(encodeRequest(requests.hget('alive', 'k')));
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => frame));
    // Keep writing until the kernel and the server stop accepting: the server paused reading.
    let written = 0;
    while (written < 200 * 1024 * 1024) {
      if (!peer.socket.write(batch)) {
        const drained = await Promise.race([once(peer.socket, 'drain').then(() => true), new Promise((r) => setTimeout(() => r(false), 500))]);
        if (!drained) break;
      }
      written += batch.length;
    }
    assert.ok(written < 200 * 1024 * 1024, `server kept reading: ${written} bytes accepted`);
    peer.destroy();
    await stillServes();
  });
});
