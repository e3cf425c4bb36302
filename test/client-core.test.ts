/**
 * The client core's pieces on their own: the portable frame codec (input split at every byte,
 * asynchronous compression kept in order), web-platform gzip against zlib, the backoff policy,
 * and the rule that the core imports no Node built-in.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { FrameReader, FrameWriter } from '../src/client/core/frames.js';
import { webCompression } from '../src/client/core/web-compression.js';
import { nodeCompression } from '../src/client/node/compression.js';
import { retryPolicy } from '../src/client/core/timing.js';
import { ProtocolError } from '../src/client/core/errors.js';
import type { Compression } from '../src/client/core/transport.js';
import { FrameDecoder } from '../src/codec/frame.js';
import { importGraph } from '../tools/import-graph.js';

const bytes = (n: number, seed = 1): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** Writes payloads through a FrameWriter, collecting the frames in the order they come out. */
async function frames(compression: Compression, payloads: Uint8Array[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const writer = new FrameWriter(compression, (f) => out.push(f), (err) => assert.fail(err));
  for (const p of payloads) writer.push(p);
  for (let i = 0; i < 100 && out.length < payloads.length; i++) await new Promise((r) => setTimeout(r, 5));
  return out;
}

/** Feeds `stream` to a FrameReader in chunks of `size`, waiting for `count` payloads. */
async function read(compression: Compression, stream: Uint8Array, size: number, count: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  const reader = new FrameReader(1 << 20, compression, (p) => out.push(p), (err) => assert.fail(err));
  for (let i = 0; i < stream.length; i += size) reader.push(stream.subarray(i, i + size));
  for (let i = 0; i < 200 && out.length < count; i++) await new Promise((r) => setTimeout(r, 5));
  return out;
}

const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

for (const [name, compression] of [['zlib', nodeCompression], ['CompressionStream', webCompression]] as const) {
  describe(`client frame codec with ${name}`, () => {
    const payloads = [bytes(3), bytes(5000, 7), bytes(0), bytes(1436, 3), bytes(1437, 4), bytes(10, 9)];

    test('frames come out in order, large ones compressed, and the server codec reads them', async () => {
      const out = await frames(compression, payloads);
      assert.equal(out.length, payloads.length);
      const decoder = new FrameDecoder();
      decoder.push(Buffer.from(concat(out)));
      for (const p of payloads) assert.deepEqual(new Uint8Array(decoder.next()!), p);
      assert.equal(out[1][0] & 0x80, 0x80, 'over the threshold: gzip bit set');
      assert.equal(out[3][0] & 0x80, 0, '1436 bytes: not compressed');
      assert.equal(out[4][0] & 0x80, 0x80, '1437 bytes: compressed');
    });

    test('input split at every byte boundary reads back the same payloads, in order', async () => {
      const stream = concat(await frames(compression, payloads));
      for (const size of [1, 2, 3, 5, 7, 64, stream.length]) {
        const got = await read(compression, stream, size, payloads.length);
        assert.deepEqual(got.map((p) => Array.from(p)), payloads.map((p) => Array.from(p)), `chunks of ${size}`);
      }
    });
  });
}

describe('web-platform gzip', () => {
  test('interoperates with zlib both ways', async () => {
    const data = bytes(100_000);
    assert.deepEqual(new Uint8Array(gunzipSync(await webCompression.gzip(data))), data);
    assert.deepEqual(await webCompression.gunzip(gzipSync(data), 1 << 20), data);
  });

  test('stops inflating past the limit (no decompression bombs)', async () => {
    const bomb = gzipSync(new Uint8Array(10 << 20));
    await assert.rejects(async () => webCompression.gunzip(bomb, 1 << 20), /inflates past the maximum/);
  });

  test('a reader given a bad gzip payload or an oversized header fails with ProtocolError', async () => {
    const errors: Error[] = [];
    const bad = new FrameReader(1 << 20, webCompression, () => assert.fail('no payload'), (e) => errors.push(e));
    bad.push(Uint8Array.from([0x80, 0, 0, 3, 1, 2, 3]));
    const big = new FrameReader(10, webCompression, () => assert.fail('no payload'), (e) => errors.push(e));
    big.push(Uint8Array.from([0, 0, 0, 11]));
    for (let i = 0; i < 100 && errors.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(errors.length, 2);
    assert.ok(errors.every((e) => e instanceof ProtocolError));
    assert.ok(errors.some((e) => /frame of 11 bytes, over the maximum of 10/.test(e.message)));
    assert.ok(errors.some((e) => /could not be inflated/.test(e.message)));
  });
});

describe('reconnect policy', () => {
  test('exponential, capped, jittered between half and the full delay; gives up after maxAttempts', () => {
    const policy = retryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 6 })!;
    const expected = [100, 200, 400, 800, 1000, 1000];
    for (let attempt = 1; attempt <= 6; attempt++) {
      for (let i = 0; i < 50; i++) {
        const d = policy(attempt, new Error())!;
        assert.ok(d >= expected[attempt - 1] / 2 && d <= expected[attempt - 1], `attempt ${attempt}: ${d}`);
      }
    }
    assert.equal(policy(7, new Error()), null);
    assert.equal(retryPolicy(false), undefined);
    const custom = retryPolicy({ delay: (n) => (n < 2 ? 5 : null) })!;
    assert.deepEqual([custom(1, new Error()), custom(2, new Error())], [5, null]);
    assert.throws(() => retryPolicy({ initialDelayMs: -1 }), /initialDelayMs/);
  });
});

const DIST = fileURLToPath(new URL('../src/', import.meta.url));

describe('import graphs', () => {
  test('protokv/client pulls in none of the server\'s dependencies', async () => {
    const { files, packages } = await importGraph(path.join(DIST, 'client/index.js'));
    const external = [...packages].filter((p) => !p.startsWith('node:'));
    assert.deepEqual(external.sort(), ['@bufbuild/protobuf/wire']);
    const serverSide = [...files].filter((f) => /\/(service|storage|config|logger|tls|bench|cli)\b/.test(f.slice(DIST.length)));
    assert.deepEqual(serverSide, []);
    // And the type declarations shipped with it name nothing more.
    const declarations = await importGraph(path.join(DIST, 'client/index.d.ts'));
    assert.deepEqual([...declarations.packages].filter((p) => !p.startsWith('node:')).sort(), ['@bufbuild/protobuf/wire']);
  });

  test('the client core imports no Node built-in (a browser client shares it)', async () => {
    const core = path.join(DIST, 'client/core');
    for (const name of (await readdir(core)).filter((f) => f.endsWith('.js'))) {
      const { packages } = await importGraph(path.join(core, name));
      assert.deepEqual([...packages].filter((p) => p.startsWith('node:')), [], name);
    }
  });
});
