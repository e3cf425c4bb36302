/**
 * The static import graph of a built module: which files it loads and which packages it names.
 * Used to build the client package and to check that the client entry stays free of the
 * server's dependencies.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Every file reached from `entry` through relative imports, and every package it imports. */
export async function importGraph(entry: string): Promise<{ files: Set<string>; packages: Set<string> }> {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const source = await readFile(file, 'utf8');
    for (const m of source.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec.startsWith('.')) packages.add(spec);
      else if (file.endsWith('.d.ts')) queue.push(path.resolve(path.dirname(file), spec).replace(/\.js$/, '.d.ts'));
      else queue.push(path.resolve(path.dirname(file), spec));
    }
  }
  return { files, packages };
}
