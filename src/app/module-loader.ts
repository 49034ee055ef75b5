/**
 * Loading a user's module (the `-A` app, config modules, task modules) the way Node runs it,
 * TypeScript included, as the module's own package says: ESM or CommonJS.
 *
 * - `.js`, `.mjs`, `.cjs`: plain `import()`. Node picks ESM or CommonJS from the extension and
 *   the nearest package.json's "type"; top-level await works in ESM. No compiler is loaded.
 * - `.ts`, `.mts`, `.cts`: through tsx, loaded on first use (a JavaScript app never loads it).
 *   ESM TypeScript (`.mts`, or `.ts` under "type": "module") goes through tsx's ESM hooks and
 *   `import()`, top-level await included. On Node < 22.15 those hooks run on a loader thread
 *   (about 25 MB of RSS); newer Node runs them in-thread. CommonJS TypeScript goes through
 *   tsx's in-thread `require()` hook.
 * - When ts-celery itself runs from its TypeScript source (a checkout: the CLI, the tests),
 *   whatever compiled it compiles the app too; nothing more is registered.
 *
 * The app must use the very ts-celery module instance the worker runs (its `Retry`, its error
 * classes). ESM and Node's own `require()` of ESM share one instance per file; tsx's require
 * hook would compile ts-celery's ESM build a second time, as CommonJS, so ts-celery's entry is
 * put in `require.cache` first.
 */
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const THIS_FILE = fileURLToPath(import.meta.url);
/** True when this library is itself TypeScript being compiled on the fly (a checkout). */
const FROM_SOURCE = /\.[cm]?ts$/.test(THIS_FILE);
/** ts-celery's entry file, as a `require('ts-celery')` resolves it (dist/index.js, or src/index.ts in a checkout). */
const OWN_ENTRY = join(dirname(THIS_FILE), '..', `index${extname(THIS_FILE)}`);

/** How Node runs a file. */
export type ModuleFormat = 'module' | 'commonjs';

const packageTypes = new Map<string, ModuleFormat>();

/** The format of the package a folder belongs to: its nearest package.json's "type". */
function packageFormat(dir: string): ModuleFormat {
  const known = packageTypes.get(dir);
  if (known) return known;
  let format: ModuleFormat;
  let pkg: { type?: unknown } | null = null;
  try {
    pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { type?: unknown };
  } catch {
    /* none here (or unreadable, which Node would also treat as none) */
  }
  if (pkg) format = pkg.type === 'module' ? 'module' : 'commonjs';
  else format = dirname(dir) === dir ? 'commonjs' : packageFormat(dirname(dir));
  packageTypes.set(dir, format);
  return format;
}

/** ESM or CommonJS, by Node's rules: `.mjs`/`.mts` and `.cjs`/`.cts` say it, else the package's "type". */
export function moduleFormat(file: string): ModuleFormat {
  if (/\.m[jt]s$/.test(file)) return 'module';
  if (/\.c[jt]s$/.test(file)) return 'commonjs';
  return packageFormat(dirname(file));
}

/** True for files that need a TypeScript compiler. */
export function isTypeScript(file: string): boolean {
  return /\.[cm]?tsx?$/.test(file);
}

let esmHooks: Promise<void> | null = null;
let requireHook = false;

/** tsx's ESM hooks, registered once. */
function registerEsmHooks(): Promise<void> {
  esmHooks ??= import('tsx/esm/api').then(({ register }) => {
    register();
  });
  return esmHooks;
}

/** tsx's in-thread require() hook, registered once. */
function registerRequireHook(): void {
  if (requireHook || FROM_SOURCE) return;
  (require('tsx/cjs/api') as typeof import('tsx/cjs/api')).register();
  requireHook = true;
}

/** Puts ts-celery's entry in require.cache as the ESM instance the worker runs (see above). */
async function cacheOwnEntry(): Promise<void> {
  if (require.cache[OWN_ENTRY]) return;
  const entry = new Module(OWN_ENTRY);
  entry.filename = OWN_ENTRY;
  entry.loaded = true;
  entry.exports = await import(pathToFileURL(OWN_ENTRY).href);
  require.cache[OWN_ENTRY] = entry;
}

/** Loads a module file by the rules above and returns its exports. Errors are the module's own. */
export async function loadModule(file: string): Promise<Record<string, unknown>> {
  const typeScript = isTypeScript(file);
  if (moduleFormat(file) === 'commonjs') {
    // require(), as `node file.cjs` runs it: Node 20 cannot import() a CommonJS module that
    // require()s ESM (ts-celery) once loader hooks are registered.
    if (typeScript) registerRequireHook();
    await cacheOwnEntry();
    return createRequire(file)(file) as Record<string, unknown>;
  }
  if (typeScript && !FROM_SOURCE) await registerEsmHooks();
  return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
}
