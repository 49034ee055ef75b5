/**
 * How a pool thread starts: a small CommonJS script (so it needs no file of its own in dist/)
 * that registers tsx exactly as bin/ts-celery.js does when the library runs from its
 * TypeScript source, then imports thread-main. Installed from npm (dist/), it imports the
 * built thread-main.js directly, and the app module loader registers tsx only for a
 * TypeScript app, as in the main thread.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
/** A checkout runs this file as TypeScript through tsx: each thread must register tsx too. */
const FROM_SOURCE = /\.[cm]?ts$/.test(SELF);
const ENTRY = new URL(`./thread-main.${FROM_SOURCE ? 'ts' : 'js'}`, import.meta.url).href;

/**
 * What each thread runs first (a CommonJS script, so it needs no file of its own in dist/):
 * the same tsx registration as bin/ts-celery.js when the library runs from its source,
 * then thread-main. A failure here is the thread's uncaught error (its load failure).
 */
export const BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const boot = workerData.boot;
(async () => {
  if (boot.tsxEsm) {
    (await import(boot.tsxEsm)).register(boot.tsconfig ? { tsconfig: boot.tsconfig } : undefined);
    require(boot.tsxCjs).register();
  }
  await import(boot.entry);
})().catch((err) => process.nextTick(() => { throw err; }));
`;

/** Where a thread finds its program, and tsx's register APIs when it must run TypeScript. */
export interface Boot {
  entry: string;
  tsxEsm: string | null;
  tsxCjs: string | null;
  tsconfig: string | null;
}

/** tsx's ESM and CommonJS register APIs, found through its package.json's exports. */
function tsxApis(): { esm: string; cjs: string } {
  const pkgFile = createRequire(SELF).resolve('tsx/package.json');
  type Target = string | { import?: Target; require?: Target; default?: Target };
  const exports = (JSON.parse(readFileSync(pkgFile, 'utf8')) as { exports: Record<string, Target> }).exports;
  const pick = (target: Target | undefined, condition: 'import' | 'require'): string => {
    if (typeof target === 'string') return target;
    const next = target?.[condition] ?? target?.default;
    if (next === undefined) throw new Error(`tsx's package.json has no ${condition} export for its register API`);
    return pick(next, condition);
  };
  const dir = dirname(pkgFile);
  return {
    esm: pathToFileURL(join(dir, pick(exports['./esm/api'], 'import'))).href,
    cjs: join(dir, pick(exports['./cjs/api'], 'require')),
  };
}

/** The boot data of this library's threads: thread-main.ts through tsx in a checkout, thread-main.js in dist/. */
export function bootData(): Boot {
  if (!FROM_SOURCE) return { entry: ENTRY, tsxEsm: null, tsxCjs: null, tsconfig: null };
  const tsx = tsxApis();
  return { entry: ENTRY, tsxEsm: tsx.esm, tsxCjs: tsx.cjs, tsconfig: process.env.TSX_TSCONFIG_PATH ?? null };
}
