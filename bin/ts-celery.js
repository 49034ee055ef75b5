#!/usr/bin/env node
// The `ts-celery` command.
//
// Installed from npm, the package has no src/: the CLI runs the built JavaScript in dist/ with
// plain Node, and loads tsx only for a TypeScript app.
//
// In a checkout (src/ is there, and tsx, a dependency), it runs the TypeScript source through
// tsx instead, so `npx ts-celery worker`, the tests and the benchmarks always run the code as it
// is now, never a dist/ built before the last edit. The checkout's tsconfig.json maps
// `import 'ts-celery'` in the app to the same source, so app and worker share one instance.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
const require = createRequire(import.meta.url);

function canRunSource() {
  if (!existsSync(source)) return false;
  try {
    require.resolve('tsx/esm/api');
    return true;
  } catch {
    return false;
  }
}

let cli;
if (canRunSource()) {
  const tsconfig = fileURLToPath(new URL('../tsconfig.json', import.meta.url));
  process.env.TSX_TSCONFIG_PATH ??= tsconfig; // read by tsx's require() hook
  (await import('tsx/esm/api')).register({ tsconfig });
  require('tsx/cjs/api').register();
  cli = await import(source.href);
} else {
  cli = await import('../dist/cli/main.js');
}
await cli.main(process.argv.slice(2));
