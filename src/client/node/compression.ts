/**
 * gzip for the Node client, from zlib: synchronous for small payloads (cheaper than a trip
 * through the thread pool), asynchronous for large ones so the event loop is not held up.
 */
import { gunzip, gunzipSync, gzip, gzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import type { Compression } from '../core/transport.js';

const SYNC_LIMIT = 256 * 1024;
const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export const nodeCompression: Compression = {
  gzip: (data) => (data.length <= SYNC_LIMIT ? gzipSync(data) : gzipAsync(data)),
  gunzip: (data, maxLength) =>
    data.length <= SYNC_LIMIT / 8 ? gunzipSync(data, { maxOutputLength: maxLength }) : gunzipAsync(data, { maxOutputLength: maxLength }),
};
