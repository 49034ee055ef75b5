#!/usr/bin/env node
// The CLI loads itself and the user's TypeScript app through tsx's in-thread require() hook.
// (tsx's ESM loader runs its hooks on a second thread with its own V8 heap: about 35 MB of
// worker RSS for nothing once the app is loaded.) Node >= 20.19 can require() ESM-only
// dependencies, so the whole worker runs as CommonJS; no build step either way.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
require('tsx/cjs');
const { main } = require('../src/cli/main.ts');
await main(process.argv.slice(2));
