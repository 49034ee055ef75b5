/**
 * Finding and loading user modules: config modules, autodiscovered task packages and
 * `imports`/`include`. JavaScript loads with plain Node, TypeScript through tsx, with no
 * build step; ESM or CommonJS as the module's package says (`module-loader.ts`).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImproperlyConfigured } from '../errors.js';
import { loadModule } from './module-loader.js';

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

type LoadError = Error & { errors?: Array<{ text?: string; location?: { file: string; line: number; column: number } | null }> };

/** Where a load error happened (`file:line[:column]`): V8's syntax-error header, else the first user frame. */
function errorLocation(err: LoadError): string | null {
  const stack = typeof err.stack === 'string' ? err.stack : '';
  const first = stack.split('\n', 1)[0] ?? '';
  // A syntax error's stack starts with "<file>:<line>", then the line of code and a caret.
  const header = /^((?:file:\/\/|\/|[A-Za-z]:\\)\S*):(\d+)$/.exec(first);
  if (header) return `${header[1]!.startsWith('file://') ? fileURLToPath(header[1]!) : header[1]}:${header[2]}`;
  for (const line of stack.split('\n')) {
    const frame = /^\s+at (?:.*\()?((?:file:\/\/|\/|[A-Za-z]:\\)[^()]*?):(\d+):(\d+)\)?$/.exec(line);
    if (!frame) continue;
    const file = frame[1]!.startsWith('file://') ? fileURLToPath(frame[1]!) : frame[1]!;
    if (file.startsWith(THIS_LIBRARY) || file.includes(`${sep}node_modules${sep}`)) continue;
    return `${file}:${frame[2]}:${frame[3]}`;
  }
  return null;
}

/**
 * Where the syntax error in a JavaScript file is (`file:line`), from `node --check`: Node's
 * import() reports an ESM syntax error without its place. Only on the way to an error exit.
 */
function syntaxErrorLine(file: string): string | null {
  if (!/\.[cm]?js$/.test(file)) return null;
  const check = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8', timeout: 10_000 });
  const first = (check.stderr ?? '').split('\n', 1)[0] ?? '';
  return /^\S+:\d+$/.test(first) ? first : null;
}

/**
 * One line saying what went wrong while loading a module, and where: `file:line:column` for
 * syntax errors (JavaScript or TypeScript) and for errors thrown while the module ran.
 * `file` is the module that was loaded (to place a syntax error Node reports without a place).
 */
export function describeLoadError(err: unknown, file?: string): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as LoadError;
  // esbuild, tsx's compiler: "Transform failed with 1 error:\n/app/tasks.ts:3:6: ERROR: Expected ..."
  const compile = e.errors?.find((x) => x.text);
  if (compile?.location) return `${compile.location.file}:${compile.location.line}:${compile.location.column + 1}: ${compile.text}`;
  const lines = String(e.message).split('\n').map((l) => l.trim()).filter(Boolean);
  const transform = lines.findIndex((l) => /^Transform failed with \d+ errors?:?$/.test(l));
  if (transform >= 0 && lines[transform + 1]) return lines[transform + 1]!.replace(/: ERROR: /, ': ');
  const message = e.name && e.name !== 'Error' && !lines[0]?.startsWith(e.name) ? `${e.name}: ${lines[0] ?? ''}` : (lines[0] ?? e.name);
  const location = errorLocation(e) ?? (e.name === 'SyntaxError' && file ? syntaxErrorLine(file) : null);
  return location && !message.includes(location) ? `${message} (at ${location})` : message;
}

/**
 * Imports a module file (see `module-loader.ts` for JavaScript, TypeScript, ESM and CommonJS).
 * A failure is an {@link ImproperlyConfigured} naming the file, what went wrong and where;
 * the original error is its `cause`.
 */
export async function importFile(file: string): Promise<Record<string, unknown>> {
  try {
    return await loadModule(file);
  } catch (err) {
    throw new ImproperlyConfigured(`Cannot load ${file}: ${describeLoadError(err, file)}`, { cause: err });
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
