#!/usr/bin/env node
// The command is the compiled TypeScript in dist/ (npm ci and npm run build produce it).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('protokv is not built yet: run "npm run build" (npm ci builds it too)\n');
  process.exit(1);
}
await import(main.href);
