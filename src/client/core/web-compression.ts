/**
 * gzip from the web platform's `CompressionStream` / `DecompressionStream` (browsers, Deno,
 * Node 18+), for clients without zlib. Inflation stops as soon as the output passes the limit,
 * so a small hostile payload cannot balloon in memory.
 */
import type { Compression } from './transport.js';

async function collect(stream: ReadableStream<Uint8Array>, maxLength: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxLength) {
      await reader.cancel();
      throw new RangeError(`inflates past the maximum of ${maxLength} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

// DOM typings declare the writable side as BufferSource and Node's as Uint8Array; the streams
// accept our Uint8Array either way, so one structural type serves both builds (the assertions
// below are needed under DOM typings only, hence the lint exceptions).
type Transform = { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> };

function through(data: Uint8Array, transform: Transform): ReadableStream<Uint8Array> {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(data);
      controller.close();
    },
  });
  return source.pipeThrough(transform);
}

export const webCompression: Compression = {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
  gzip: (data) => collect(through(data, new CompressionStream('gzip') as unknown as Transform), Infinity),
  gunzip: (data, maxLength) =>
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    collect(through(data, new DecompressionStream('gzip') as unknown as Transform), maxLength),
};
