/** Helpers for the threads-pool tests. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from '../../src/index.js';

/** The app module each pool thread loads. */
export const APP_MODULE = join(dirname(fileURLToPath(import.meta.url)), 'app.ts');

/** OS threads of a process now (`Threads:` in /proc/<pid>/status). */
export function osThreads(pid: number | 'self' = 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^Threads:\s+(\d+)/m.exec(status)![1]);
}

/** Resolves once `check` is true (polled every 20 ms), or rejects after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs: number, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves once every pool thread of the worker has loaded the app again (after kills and recycling). */
export async function poolSettled(worker: Worker, threads: number, timeoutMs = 20_000): Promise<void> {
  const pool = worker.pool as unknown as { threads: Set<{ state: string }> };
  await waitFor(() => pool.threads.size === threads && [...pool.threads].every((t) => t.state === 'idle'), timeoutMs, `${threads} idle pool threads`);
}
