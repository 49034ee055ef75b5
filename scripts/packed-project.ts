/**
 * ts-celery as a user gets it: `npm pack` this checkout (its `prepare` script builds dist/),
 * then a real `npm install` of the tarball into a fresh project of its own. Used by the package
 * test (test/package/) and the start-up measurement (scripts/bench/startup.ts).
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What a finished command printed. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a user's shell: none of the npm_* variables of the `npm test` around us. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}

/** Runs a command to completion (no shell). Never rejects for a non-zero exit; does for a timeout. */
export function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timeoutMs = options.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A command that must succeed. */
async function mustRun(command: string, args: string[], cwd: string): Promise<string> {
  const r = await run(command, args, { cwd });
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.code} in ${cwd}:\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** What `npm pack --json` says about the tarball. */
export interface PackInfo {
  filename: string;
  version: string;
  /** Paths inside the package, e.g. `dist/index.js`. */
  files: string[];
}

/** A fresh project with the packed ts-celery installed. */
export interface PackedProject {
  readonly dir: string;
  readonly pack: PackInfo;
  /** Deletes the project (and its tarball). */
  remove(): void;
}

export interface PackedProjectOptions {
  /** Files to copy into the project (a folder's contents). */
  copyFrom?: string;
  /** More dependencies the project installs, e.g. `{ '@types/node': '^20.19.0' }`. */
  devDependencies?: Record<string, string>;
}

/**
 * Packs the checkout and installs the tarball into a new temporary project
 * (`"type": "module"`), with a real `npm install` from the registry (the npm cache makes
 * repeated runs quick).
 */
export async function createPackedProject(options: PackedProjectOptions = {}): Promise<PackedProject> {
  const dir = mkdtempSync(join(tmpdir(), 'ts-celery-consumer-'));
  try {
    const packed = JSON.parse(await mustRun('npm', ['pack', '--json', '--pack-destination', dir], ROOT)) as Array<{
      filename: string;
      version: string;
      files: Array<{ path: string }>;
    }>;
    const info = packed[0]!;
    const pack: PackInfo = { filename: info.filename, version: info.version, files: info.files.map((f) => f.path) };
    const project = {
      name: 'ts-celery-consumer',
      private: true,
      type: 'module',
      dependencies: { 'ts-celery': `file:./${pack.filename}` },
      devDependencies: options.devDependencies ?? {},
    };
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify(project, null, 2)}\n`);
    if (options.copyFrom) {
      for (const name of readdirSync(options.copyFrom)) cpSync(join(options.copyFrom, name), join(dir, name), { recursive: true });
    }
    await mustRun('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], dir);
    return { dir, pack, remove: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
