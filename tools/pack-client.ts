/**
 * Builds `protokv-client`, the client library as a package of its own, from the same compiled
 * source as `protokv`: the modules `protokv/client` imports (and their type declarations),
 * nothing of the server, with `@bufbuild/protobuf` as its only dependency. Then packs it with
 * `npm pack`.
 *
 *   npm run pack:client [-- --out DIR]      → DIR/protokv-client-VERSION.tgz (default: dist/packages/)
 */
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { importGraph } from './import-graph.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST = path.join(ROOT, 'dist');
const ENTRY = path.join(DIST, 'src/client/index.js');

interface RootPackage {
  version: string;
  engines: Record<string, string>;
  dependencies: Record<string, string>;
  repository?: unknown;
}

const README = `# protokv-client

The client library of [protokv](https://www.npmjs.com/package/protokv) on its own: everything in
\`protokv/client\` — \`connect\`, \`KvClient\`, subscriptions, the errors — without the server's
dependencies (no native builds). See protokv's README for the API.

\`\`\`ts
import { connect } from 'protokv-client';

const kv = await connect({ host: '127.0.0.1', port: 9527 });
await kv.hset('users', 'ada', 'Lovelace');
console.log(await kv.hget('users', 'ada'));
await kv.close();
\`\`\`
`;

/** Writes the package into `dir` and returns the path of the tarball `npm pack` made. */
export async function packClient(out: string): Promise<string> {
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as RootPackage;
  const js = await importGraph(ENTRY);
  const dts = await importGraph(ENTRY.replace(/\.js$/, '.d.ts'));
  const external = new Set([...js.packages, ...dts.packages].filter((p) => !p.startsWith('node:')));
  const dependencies: Record<string, string> = {};
  for (const spec of external) {
    const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
    const version = pkg.dependencies[name];
    if (version === undefined) throw new Error(`the client imports ${spec}, which is not a dependency of protokv`);
    dependencies[name] = version;
  }
  const stage = path.join(out, 'protokv-client');
  await rm(stage, { recursive: true, force: true });
  for (const file of [...js.files, ...dts.files]) {
    const target = path.join(stage, 'dist', path.relative(DIST, file));
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(file, target);
  }
  const manifest = {
    name: 'protokv-client',
    version: pkg.version,
    description: 'The protokv client library alone: typed commands, pipelining, reconnects, subscriptions as async iterables',
    license: 'MIT',
    type: 'module',
    engines: pkg.engines,
    main: './dist/src/client/index.js',
    types: './dist/src/client/index.d.ts',
    exports: { '.': { types: './dist/src/client/index.d.ts', default: './dist/src/client/index.js' } },
    files: ['dist'],
    dependencies,
  };
  await writeFile(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(path.join(stage, 'README.md'), README);
  await copyFile(path.join(ROOT, 'LICENSE'), path.join(stage, 'LICENSE'));
  const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', out], { cwd: stage, encoding: 'utf8' }).trim().split('\n').at(-1)!;
  return path.join(out, tarball);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  const out = path.resolve(values.out ?? path.join(ROOT, 'dist', 'packages'));
  await mkdir(out, { recursive: true });
  process.stdout.write(`${await packClient(out)}\n`);
}
