/**
 * Loading user modules: config modules, autodiscovered task packages and
 * `imports`/`include`. TypeScript loads directly (tsx), no build step.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ImproperlyConfigured } from '../errors.js';

const EXTENSIONS = ['.ts', '.mts', '.js', '.mjs', '.cts', '.cjs'];
const THIS_LIBRARY = resolve(dirname(fileURLToPath(import.meta.url)), '..') + sep;

/**
 * Finds the file for a module path the way a Celery user writes it: a file
 * with or without extension, a folder with `index`, or a dotted name
 * (`celery_tasks.sms.tasks` = `celery_tasks/sms/tasks`).
 */
export function resolveModuleFile(spec: string, base: string): string | null {
  const candidates = [spec];
  if (!spec.includes('/') && !spec.includes('\\') && /^[\w.]+$/.test(spec) && spec.includes('.') && !/\.(m|c)?[jt]s$/.test(spec)) {
    candidates.push(spec.replace(/\./g, '/'));
  }
  for (const candidate of candidates) {
    const full = isAbsolute(candidate) ? candidate : resolve(base, candidate);
    if (existsSync(full) && statSync(full).isFile()) return full;
    for (const ext of EXTENSIONS) if (existsSync(full + ext)) return full + ext;
    for (const ext of EXTENSIONS) if (existsSync(join(full, `index${ext}`))) return join(full, `index${ext}`);
  }
  return null;
}

/**
 * Imports a module file; errors name the file and what went wrong. When this
 * library itself was loaded with require() (the CLI does that, through tsx's
 * in-thread hook), user modules are required too: same module instances, and
 * no ESM loader thread.
 */
export async function importFile(file: string): Promise<Record<string, unknown>> {
  try {
    if (typeof require === 'function') return require(file) as Record<string, unknown>;
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new ImproperlyConfigured(`Cannot load ${file}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  }
}

/**
 * The folder of the first file on the call stack outside this library: where
 * `app.autodiscoverTasks(['sms'])` was written, so `sms` resolves next to it
 * (Python resolves packages relative to the app's package the same way).
 */
export function callerDirectory(): string {
  const original = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_err, frames) => frames;
    const holder: { stack?: NodeJS.CallSite[] } = {};
    Error.captureStackTrace(holder, callerDirectory);
    for (const frame of holder.stack ?? []) {
      let file = frame.getFileName();
      if (!file || file.startsWith('node:')) continue;
      if (file.startsWith('file://')) file = fileURLToPath(file);
      if (!isAbsolute(file) || file.startsWith(THIS_LIBRARY) || file.includes(`${sep}node_modules${sep}`)) continue;
      return dirname(file);
    }
  } finally {
    Error.prepareStackTrace = original;
  }
  return process.cwd();
}

/** Loads the settings object a config module exports (default export, or its named exports). */
export async function loadConfigModule(spec: string): Promise<Record<string, unknown>> {
  const file = resolveModuleFile(spec, process.cwd());
  if (!file) {
    throw new ImproperlyConfigured(
      `Cannot find config module ${JSON.stringify(spec)} (looked for it relative to ${process.cwd()}, ` +
        `with extensions ${EXTENSIONS.join(', ')})`,
    );
  }
  const mod = await importFile(file);
  const def = mod.default;
  if (def && typeof def === 'object' && !Array.isArray(def)) return def as Record<string, unknown>;
  const named: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mod)) if (k !== 'default') named[k] = v;
  return named;
}
