/**
 * A full disk and a read-only filesystem under the persistent store: writes get 500s with a clear
 * message, reads keep working, the server stays up. Needs a small tmpfs, so it runs only where
 * this process may mount one (root with CAP_SYS_ADMIN); elsewhere it is skipped with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import { connect } from '../src/client/client.js';
import { ProtokvError } from '../src/client/errors.js';
import { requests } from '../src/protocol/requests.js';
import { fromValue } from '../src/protocol/values.js';
import { runCli, startServerProcess, type ServerProcess } from './helpers/cli.js';
import { tempDir } from './helpers/stores.js';

function mountTmpfs(dir: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}`;
  }
}

test('full disk: 500s for writes, reads still served; read-only filesystem: a clear refusal to start', async (t) => {
  const mnt = await tempDir('protokv-disk-');
  const skip = mountTmpfs(mnt.dir, '2m');
  if (skip) {
    t.skip(skip);
    await mnt.remove();
    return;
  }
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(['--data-dir', join(mnt.dir, 'data'), '--listen', '127.0.0.1:0']);
    const kv = await connect({ host: '127.0.0.1', port: server.port });
    await kv.hset('t', 'first', 'kept');
    let failure: ProtokvError | undefined;
    let acknowledged = 0;
    for (let i = 0; i < 1000 && failure === undefined; i++) {
      await kv.hset('fill', `k${i}`, Buffer.alloc(16 * 1024, i)).then(
        () => acknowledged++,
        (e: unknown) => {
          failure = e as ProtokvError;
        },
      );
    }
    assert.ok(failure instanceof ProtokvError, 'the disk filled up');
    assert.equal(failure.status, 500);
    assert.match(failure.message, /^Storage error: cannot write: /);
    assert.equal(await kv.hget('t', 'first'), 'kept', 'reads still work on a full disk');
    await assert.rejects(kv.hset('fill', 'again', Buffer.alloc(64 * 1024, 1)), (e: unknown) => e instanceof ProtokvError && e.status === 500);
    // Reads answer what was acknowledged, not what failed: the failed writes were seen while
    // pending (read your writes) and are forgotten once their commit failed.
    await assert.rejects(kv.hset('t', 'first', Buffer.alloc(256 * 1024, 2)), (e: unknown) => e instanceof ProtokvError && e.status === 500);
    assert.equal(await kv.hget('t', 'first'), 'kept');
    assert.equal(await kv.hget('fill', 'again'), undefined);
    assert.equal(await kv.hexist('fill', `k${acknowledged}`), false, 'the write that failed is not there');
    assert.deepEqual(fromValue((await kv.send(requests.hlen('fill'))).values[0]), BigInt(acknowledged));
    assert.equal((await kv.hgetall('fill')).size, acknowledged);

    await kv.close();
    assert.equal(server.child.exitCode, null, 'the server is still running');
    assert.equal(await server.stop(), 0);
    assert.ok(!(await readdir(join(mnt.dir, 'data'))).includes('protokv.lock'), 'the lock is released');

    execFileSync('mount', ['-o', 'remount,ro', mnt.dir]);
    const ro = await runCli(['serve', '--data-dir', join(mnt.dir, 'data'), '--listen', '127.0.0.1:0']);
    assert.equal(ro.code, 1);
    assert.match(ro.stdout, /cannot open the store in .*data.*read-only/i);
    t.diagnostic(`read-only start: ${/"msg":"([^"]*)"/.exec(ro.stdout)?.[1]}`);
    t.diagnostic(`full disk answered: ${failure.message}`);
  } finally {
    if (server?.child.exitCode === null) await server.stop('SIGKILL');
    execFileSync('umount', ['-l', mnt.dir]);
    await mnt.remove();
  }
});
