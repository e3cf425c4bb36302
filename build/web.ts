/**
 * Builds what browsers load, after `tsc`: the web console (`dist/console/`: its page, one
 * script, one stylesheet, its icon) and the browser client as one file (`dist/browser/protokv.js`),
 * both bundled and minified with esbuild for the browser platform — so an import of a Node
 * built-in anywhere in their code fails the build. The console's files get a gzip form next to
 * them (`NAME.gz`) for the HTTP listener to send. Prints the sizes, raw and gzipped.
 */
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const at = (...parts: string[]) => path.join(root, ...parts);

/** Browsers the console supports: those with `CompressionStream` and CSS `light-dark()`. */
const TARGET = ['chrome123', 'firefox120', 'safari17.5'];

const common: BuildOptions = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: TARGET,
  minify: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  // Browsers have no Buffer. The protocol code shared with the Node client uses it in two ways
  // only: copying bytes (`Buffer.from(bytes)` in the generated decoder) and telling a Buffer from
  // another Uint8Array (`Buffer.isBuffer`, to skip a conversion). In the browser a Uint8Array
  // serves both.
  define: { 'Buffer.from': 'Uint8Array.from', 'Buffer.isBuffer': 'ArrayBuffer.isView' },
};

/**
 * Node's `Buffer` and `require` used in a browser bundle mean Node code slipped in. (Other Node
 * names, such as `process`, appear in libraries behind `typeof` guards, so they are not checked
 * here; the console's browser test runs the bundle for real.)
 */
const NODE_ONLY = /\bBuffer\.\w+\(|\brequire\(/;

async function bundle(entry: string, outfile: string): Promise<void> {
  await build({ ...common, entryPoints: [at(entry)], outfile: at(outfile) });
  const code = await readFile(at(outfile), 'utf8');
  const hit = NODE_ONLY.exec(code);
  if (hit !== null) throw new Error(`${outfile} uses ${hit[0]}, which browsers do not have (from ${entry})`);
}

/** What a browser loads for the console: its page weight. */
const PAGE_FILES = ['dist/console/index.html', 'dist/console/console.js', 'dist/console/console.css', 'dist/console/favicon.svg'];

async function main(): Promise<void> {
  await rm(at('dist/console'), { recursive: true, force: true });
  await mkdir(at('dist/console'), { recursive: true });
  await Promise.all([
    bundle('src/console/ui/main.ts', 'dist/console/console.js'),
    bundle('src/browser/index.ts', 'dist/browser/protokv.js'),
    build({ ...common, bundle: false, sourcemap: false, entryPoints: [at('src/console/static/console.css')], outfile: at('dist/console/console.css') }),
    copyFile(at('src/console/static/favicon.svg'), at('dist/console/favicon.svg')),
    readFile(at('src/console/static/index.html'), 'utf8').then((html) =>
      // Indentation and line breaks between tags carry nothing; the page is smaller without them.
      writeFile(at('dist/console/index.html'), html.replace(/>\s*\n\s*</g, '><').trim() + '\n'),
    ),
  ]);
  const sizes = [];
  let page = 0;
  let pageGzipped = 0;
  for (const file of PAGE_FILES) {
    const bytes = await readFile(at(file));
    // The HTTP listener sends this form to browsers that accept gzip: nothing is compressed per request.
    const gzipped = gzipSync(bytes, { level: 9 });
    await writeFile(at(`${file}.gz`), gzipped);
    sizes.push(`${path.basename(file)} ${bytes.length} B (${gzipped.length} B gzipped)`);
    page += bytes.length;
    pageGzipped += gzipped.length;
  }
  const client = await readFile(at('dist/browser/protokv.js'));
  process.stdout.write(
    `web build: console ${page} B (${pageGzipped} B gzipped): ${sizes.join(', ')}; ` +
      `dist/browser/protokv.js ${client.length} B (${gzipSync(client, { level: 9 }).length} B gzipped)\n`,
  );
}

await main();
