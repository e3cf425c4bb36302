/**
 * The web console's place on the HTTP listener (SPEC 6): its built files (`dist/console/`, made
 * by `build/web.ts` and shipped in the package) served at `/`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../logger.js';
import type { HttpListener } from '../http/listener.js';
import { staticFiles } from '../http/static-files.js';

/** Where the built console is: `dist/console/`, next to this module's `dist/src/console/`. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

/**
 * Serves the console at `/`. Its pages may not be framed by another site: a console that can drop
 * tables must not be clickable through an invisible frame. When the console was never built (a
 * source checkout before `npm run build`), says so and serves nothing there.
 */
export function mountConsole(listener: HttpListener, logger: Logger, dir: string = CONSOLE_DIR): void {
  if (!existsSync(path.join(dir, 'index.html'))) {
    logger.warn({ dir }, 'the web console is not built (npm run build makes it); / is not served');
    return;
  }
  const files = staticFiles(dir, { precompressed: true });
  listener.mount('/', (req, res) => {
    res.setHeader('Content-Security-Policy', "frame-ancestors 'none'");
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    return files(req, res);
  });
}
