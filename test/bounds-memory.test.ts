/**
 * Memory bounds (SPEC 4) measured on a real `protokv serve` process: the attacks that used to
 * grow the server by gigabytes, each asserted against a generous ceiling on its peak RSS
 * (VmHWM from /proc). Loopback only, bounded in size; on both stores where the store matters.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { connect } from '../src/client/client.js';
import { requests } from '../src/protocol/requests.js';
import { frameHeader } from '../src/codec/frame.js';
import { startServerProcess, type ServerProcess } from './helpers/cli.js';
import { RawPeer } from './helpers/server.js';
import { tempDir } from './helpers/stores.js';
import { until } from './helpers/wait.js';

const MiB = 1024 * 1024;

/** Peak resident memory of process `pid` so far, in bytes. */
function peakRss(pid: number): number {
  const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(match, 'VmHWM in /proc/<pid>/status');
  return Number(match[1]) * 1024;
}

async function withServer(store: 'memory' | 'lmdb', args: string[], body: (server: ServerProcess) => Promise<void>): Promise<void> {
  const dir = store === 'lmdb' ? await tempDir('protokv-bounds-') : undefined;
  const server = await startServerProcess(['--listen', '127.0.0.1:0', ...(dir ? ['--data-dir', dir.dir] : ['--memory']), ...args]);
  try {
    await body(server);
    assert.equal(server.child.exitCode, null, 'the server is still running');
  } finally {
    await server.stop();
    await dir?.remove();
  }
}

const mib = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;

describe('memory stays bounded', () => {
  for (const store of ['memory', 'lmdb'] as const) {
    test(`${store} store: HMGET naming a 20 MiB value 1,000 times is a 413, and the server stays under 500 MiB`, async () => {
      await withServer(store, [], async (server) => {
        const kv = await connect({ port: server.port });
        await kv.hset('t', 'big', randomBytes(20 * MiB));
        const r = await kv.send(requests.hmget('t', Array<string>(1000).fill('big')));
        assert.equal(r.status, 413);
        assert.match(r.message, /^Response too large: .* \(use HSCAN\)$/);
        assert.equal(await kv.hexist('t', 'big'), true);
        await kv.close();
        const peak = peakRss(server.child.pid!);
        assert.ok(peak < 500 * MiB, `peak RSS ${mib(peak)}`);
      });
    });
  }

  test('20 subscribers that never read, 5,000 messages of 8 KiB: one copy of each message, under 400 MiB', async () => {
    const args = ['--subscriber-backlog-messages', '100000', '--subscriber-backlog-bytes', '1GiB'];
    await withServer('memory', args, async (server) => {
      const subscribers = await Promise.all(Array.from({ length: 20 }, () => RawPeer.connect(server.port)));
      for (const s of subscribers) s.send(requests.subscribe('slow'));
      await Promise.all(subscribers.map((s) => s.responses(1)));
      for (const s of subscribers) s.socket.pause();
      const kv = await connect({ port: server.port });
      const message = randomBytes(8 * 1024);
      for (let sent = 0; sent < 5000; sent += 100) await Promise.all(Array.from({ length: 100 }, () => kv.publish('slow', message)));
      const peak = peakRss(server.child.pid!);
      assert.ok(peak < 400 * MiB, `peak RSS ${mib(peak)} with 20 copies being ${mib(20 * 5000 * 8 * 1024)}`);
      await kv.close();
      subscribers.forEach((s) => s.destroy());
    });
  });

  test('20 connections announcing 60 MiB frames hold only the bytes sent', async () => {
    await withServer('memory', [], async (server) => {
      const sockets = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = net.connect({ host: '127.0.0.1', port: server.port });
          s.on('error', () => {});
          await once(s, 'connect');
          s.write(Buffer.concat([frameHeader(60 * MiB), Buffer.alloc(16, 1)]));
          return s;
        }),
      );
      await new Promise((r) => setTimeout(r, 1000));
      const peak = peakRss(server.child.pid!);
      assert.ok(peak < 250 * MiB, `peak RSS ${mib(peak)}`);
      sockets.forEach((s) => s.destroy());
    });
  });

  test('20 connections each sending 20 MiB of a 60 MiB frame: the input budget caps what is held', async () => {
    await withServer('memory', ['--input-budget', '64MiB', '--frame-timeout-ms', '120000'], async (server) => {
      const piece = Buffer.alloc(MiB, 0x41);
      const sockets = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = net.connect({ host: '127.0.0.1', port: server.port });
          s.on('error', () => {});
          await once(s, 'connect');
          s.write(frameHeader(60 * MiB));
          for (let i = 0; i < 20; i++) s.write(piece);
          return s;
        }),
      );
      // Wait until the server has taken all it will: the bytes still queued on our side stop moving.
      let last = -1;
      let since = Date.now();
      await until(
        () => {
          const queued = sockets.reduce((n, s) => n + s.writableLength, 0);
          if (queued !== last) {
            last = queued;
            since = Date.now();
          }
          return queued === 0 || Date.now() - since > 1500;
        },
        'the server to stop reading',
        60_000,
      );
      const peak = peakRss(server.child.pid!);
      assert.ok(peak < 300 * MiB, `peak RSS ${mib(peak)} with ${mib(20 * 20 * MiB)} sent`);
      sockets.forEach((s) => s.destroy());
    });
  });
});
