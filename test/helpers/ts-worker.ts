/** Spawns `ts-celery worker` as a real child process, as users run it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'bin', 'ts-celery.js');

export interface TsWorker {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the worker printed so far (stdout + stderr). */
  output(): string;
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>;
  /** SIGTERM (warm shutdown) and wait; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export interface TsWorkerOptions {
  app?: string;
  queues?: string[];
  concurrency?: number;
  loglevel?: string;
  env?: Record<string, string>;
  extraArgs?: string[];
  /** Wait for "ready." (default true). */
  waitReady?: boolean;
  timeoutMs?: number;
}

/** Runs the CLI with arbitrary arguments (for error-path tests). */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ts-celery ${args.join(' ')} did not exit within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function startTsWorker(opts: TsWorkerOptions = {}): Promise<TsWorker> {
  const args = [CLI, 'worker', '-A', opts.app ?? 'test/interop/ts-app', '-l', opts.loglevel ?? 'info'];
  if (opts.queues?.length) args.push('-Q', opts.queues.join(','));
  if (opts.concurrency) args.push('-c', String(opts.concurrency));
  args.push('-n', `ts-${process.pid}-${Math.random().toString(36).slice(2, 7)}@%h`, ...(opts.extraArgs ?? []));
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...(opts.env ?? {}) };
  if (opts.queues?.[0] && !env.TSAPP_QUEUE) env.TSAPP_QUEUE = opts.queues[0];
  const child = spawn(process.execPath, args, { cwd: ROOT, env });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const worker: TsWorker = {
    child,
    pid: child.pid!,
    output: () => out,
    exited,
    kill: (signal = 'SIGKILL') => void child.kill(signal),
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  if (opts.waitReady === false) return worker;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ts-celery worker not ready within ${opts.timeoutMs ?? 20_000} ms:\n${out}`)), opts.timeoutMs ?? 20_000);
    const check = (): void => {
      if (/ ready\.$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`ts-celery worker exited with ${code} before ready:\n${out}`));
    });
  });
  return worker;
}
