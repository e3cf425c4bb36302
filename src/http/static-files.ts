/**
 * Serves the files of one directory over HTTP (the web console's, SPEC 6): GET and HEAD only, a
 * content type from the file name, `index.html` for a directory, optionally a gzip form made at
 * build time, and nothing outside the directory — no `..`, no encoded separators, no symbolic
 * link leading out.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import { requestPath, sendText, type HttpHandler } from './listener.js';

/** Content types by file extension; anything else is sent as `application/octet-stream`. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};

export interface StaticFilesOptions {
  /** The URL prefix the files are mounted at (ends with `/`). Default `/`. */
  prefix?: string;
  /** The file sent for a directory. Default `index.html`. */
  index?: string;
  /**
   * Send `NAME.gz`, when it exists next to `NAME`, to clients that accept gzip (made at build
   * time, so nothing is compressed per request). Default false.
   */
  precompressed?: boolean;
}

/**
 * A handler (for `HttpListener.mount`) serving the files under `root`. Paths are resolved inside
 * `root` after percent-decoding; one that would leave it, or that names something other than a
 * regular file, is 404 — the same answer as a missing file, so nothing about the rest of the
 * disk can be learned.
 */
export function staticFiles(root: string, options: StaticFilesOptions = {}): HttpHandler {
  const prefix = options.prefix ?? '/';
  const index = options.index ?? 'index.html';
  const precompressed = options.precompressed ?? false;
  const base = path.resolve(root);
  // The root's own real path, found once, bounds where symbolic links may lead.
  let realRoot: Promise<string> | undefined;
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      sendText(res, 405, 'method not allowed\n');
      return;
    }
    const relative = relativePath(req, prefix);
    if (relative === undefined) {
      sendText(res, 404, 'not found\n');
      return;
    }
    realRoot ??= realpath(base);
    const root = await realRoot;
    const file = await resolveFile(root, path.join(base, relative), index);
    if (file === undefined) {
      sendText(res, 404, 'not found\n');
      return;
    }
    // The type is the original file's, whichever form of it is sent.
    const type = CONTENT_TYPES[path.extname(file.path).toLowerCase()] ?? 'application/octet-stream';
    let sent = file;
    if (precompressed) {
      res.setHeader('Vary', 'Accept-Encoding');
      const gzipped = acceptsGzip(req.headers['accept-encoding']) ? await resolveFile(root, `${file.path}.gz`, index) : undefined;
      if (gzipped !== undefined && gzipped.path === `${file.path}.gz`) {
        sent = gzipped;
        res.setHeader('Content-Encoding', 'gzip');
      }
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', type);
    res.setHeader('Content-Length', sent.size);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    // The console's files change with each release; revalidating keeps a browser from mixing versions.
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Last-Modified', sent.modified.toUTCString());
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(sent.path);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  };
}

/**
 * The request path below `prefix`, percent-decoded, as a relative path with no `..`; `undefined`
 * when the path is outside the prefix, malformed, or tries to climb out.
 */
function relativePath(req: IncomingMessage, prefix: string): string | undefined {
  const raw = requestPath(req);
  if (!raw.startsWith(prefix)) return undefined;
  const segments = raw.slice(prefix.length).split('/');
  const decoded: string[] = [];
  for (const segment of segments) {
    let text: string;
    try {
      text = decodeURIComponent(segment);
    } catch {
      return undefined;
    }
    // An encoded separator or NUL inside a segment is never a real file name here.
    if (text.includes('/') || text.includes('\\') || text.includes('\0')) return undefined;
    if (text === '..') return undefined;
    if (text === '' || text === '.') continue;
    decoded.push(text);
  }
  return decoded.join('/');
}

/**
 * Whether an `Accept-Encoding` header accepts gzip: `gzip`, or else `*`, listed with a weight above
 * zero (`q=0` refuses it).
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const item of header.split(',')) {
    const [coding = '', ...params] = item.split(';').map((part) => part.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (coding === 'gzip') gzip = weight;
    else if (coding === '*') any = weight;
  }
  return (gzip ?? any ?? 0) > 0;
}

interface FoundFile {
  path: string;
  size: number;
  modified: Date;
}

/** The regular file at `candidate` (or its index file), if it lies inside `realRoot`. */
async function resolveFile(realRoot: string, candidate: string, index: string): Promise<FoundFile | undefined> {
  try {
    let real = await realpath(candidate);
    if (!isInside(realRoot, real)) return undefined;
    let info = await stat(real);
    if (info.isDirectory()) {
      real = await realpath(path.join(real, index));
      if (!isInside(realRoot, real)) return undefined;
      info = await stat(real);
    }
    if (!info.isFile()) return undefined;
    return { path: real, size: info.size, modified: info.mtime };
  } catch {
    return undefined;
  }
}

function isInside(root: string, file: string): boolean {
  return file === root || file.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}
