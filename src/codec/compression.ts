/**
 * gzip for frame payloads (SPEC 1.2), done so that no payload holds up the event loop. Small
 * payloads are inflated or compressed on the calling thread (well under a millisecond); large ones
 * in Node's thread pool, streamed in 1 MiB chunks, so the event loop only ever handles one chunk
 * at a time: it never inflates, compresses or copies a whole large payload in one go.
 */
import { createGunzip, createGzip, gunzipSync } from 'node:zlib';
import { errors, type KvError } from '../errors.js';

/** Payloads that inflate to at most this are inflated on the calling thread; larger ones in the thread pool. */
export const SYNC_INFLATE_LIMIT = 256 * 1024;
/** Payloads larger than this are compressed in the thread pool (`compress`) rather than on the calling thread. */
export const SYNC_COMPRESS_LIMIT = 64 * 1024;
/** Output chunk of the thread-pool streams: each costs the event loop one callback. */
const CHUNK = 1024 * 1024;

/** Inflates `payload`, refusing output past `max` bytes; throws the protocol's 413 or 400. */
export function inflateSync(payload: Buffer, max: number): Buffer {
  try {
    return gunzipSync(payload, { maxOutputLength: max });
  } catch (err) {
    throw inflateError(err, max);
  }
}

/**
 * Inflates `payload` on the calling thread when it inflates to at most `SYNC_INFLATE_LIMIT`
 * bytes, else in the thread pool (the synchronous attempt stops at the limit, so at most that
 * much work is spent on it). Refuses output past `max` bytes with the protocol's 413; invalid
 * gzip is a 400. A promise is returned only for large payloads.
 */
export function inflate(payload: Buffer, max: number): Buffer | Promise<Buffer> {
  const syncLimit = Math.min(max, SYNC_INFLATE_LIMIT);
  try {
    return gunzipSync(payload, { maxOutputLength: syncLimit });
  } catch (err) {
    if (syncLimit === max || (err as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw inflateError(err, max);
  }
  return inflateInPool(payload, max);
}

/**
 * Inflates in the thread pool, copying each chunk into the result as it comes. The result is
 * sized from the size the gzip trailer states (capped at `max`; memory is only touched as it is
 * written), and grown if the trailer understated it.
 */
function inflateInPool(payload: Buffer, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stated = payload.length >= 18 ? payload.readUInt32LE(payload.length - 4) : 0;
    let out = Buffer.allocUnsafe(Math.min(max, Math.max(stated, CHUNK)));
    let size = 0;
    const gunzip = createGunzip({ chunkSize: CHUNK });
    gunzip.on('data', (chunk: Buffer) => {
      if (size + chunk.length > max) {
        gunzip.destroy();
        reject(errors.frameTooLarge(max + 1, max));
        return;
      }
      if (size + chunk.length > out.length) {
        const grown = Buffer.allocUnsafe(Math.min(max, Math.max(2 * out.length, size + chunk.length)));
        out.copy(grown, 0, 0, size);
        out = grown;
      }
      chunk.copy(out, size);
      size += chunk.length;
    });
    gunzip.on('end', () => resolve(out.subarray(0, size)));
    gunzip.on('error', (err) => reject(inflateError(err, max)));
    gunzip.end(payload);
  });
}

/**
 * Compresses `payload` (one buffer, or the pieces of one payload in order) in the thread pool;
 * resolves to the gzip member as the chunks it was produced in (about a megabyte each), never
 * joined.
 */
export function compress(payload: Uint8Array | readonly Uint8Array[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const gzip = createGzip({ chunkSize: CHUNK });
    gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
    gzip.on('end', () => resolve(chunks));
    gzip.on('error', reject);
    if (payload instanceof Uint8Array) gzip.end(payload);
    else {
      for (const piece of payload) gzip.write(piece);
      gzip.end();
    }
  });
}

function inflateError(err: unknown, max: number): KvError {
  if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return errors.frameTooLarge(max + 1, max);
  return errors.malformedFrame('compressed payload is not valid gzip', err);
}
