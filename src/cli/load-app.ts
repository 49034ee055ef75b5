/**
 * `-A`: finding the user's app. Takes a folder (its `main`, else `index`, with any
 * JavaScript or TypeScript extension), a module file (with or without extension) or a
 * dotted path, relative to the current directory or absolute. The module exports the app
 * as `app`, `celery`, or default (or is the app, `module.exports = app`).
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Celery } from '../app/celery.js';
import { describeLoadError, importFile, resolveModuleFile } from '../app/modules.js';

/** A problem with `-A`, printed as one line, exit code 1. */
export class AppLoadError extends Error {}

function isCeleryApp(value: unknown): value is Celery {
  // Duck-typed: two copies of the library (the CLI's and the app's) are still compatible.
  const v = value as Partial<Celery> | null;
  return !!v && typeof v === 'object' && v.tasks instanceof Map && typeof v.loadTasks === 'function' && typeof v.conf === 'object';
}

/** Resolves `-A` to a file. */
export function resolveAppFile(spec: string, cwd = process.cwd()): string {
  const full = resolve(cwd, spec);
  if (existsSync(full) && statSync(full).isDirectory()) {
    const file = resolveModuleFile('main', full) ?? resolveModuleFile('index', full);
    if (!file) throw new AppLoadError(`Cannot load app "${spec}": the folder ${full} has no main or index module (.ts, .js, ...)`);
    return file;
  }
  const file = resolveModuleFile(spec, cwd);
  if (!file) throw new AppLoadError(`Cannot load app "${spec}": no such folder or module (looked in ${cwd})`);
  return file;
}

/** Imports the module and returns the Celery app it exports. */
export async function loadApp(spec: string, cwd = process.cwd()): Promise<{ app: Celery; file: string }> {
  const file = resolveAppFile(spec, cwd);
  let mod: Record<string, unknown>;
  try {
    mod = await importFile(file);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause ?? err;
    throw new AppLoadError(`Cannot load app "${spec}": ${file} failed to load: ${describeLoadError(cause, file)}`);
  }
  if (isCeleryApp(mod)) return { app: mod, file };
  for (const key of ['app', 'celery', 'default']) {
    if (isCeleryApp(mod[key])) return { app: mod[key], file };
  }
  throw new AppLoadError(
    `Cannot load app "${spec}": ${file} exports no Celery app (expected an export named "app" or "celery", or a default export)`,
  );
}
