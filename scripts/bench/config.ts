/** Where the benchmark runs and how big each workload is (full and `--quick`). */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(BENCH_DIR, '..', '..');
export const RESULTS_DIR = join(ROOT, 'bench-results');

/** The test vhost (the URL path is the vhost). */
export const DEFAULT_BROKER = 'amqp://guest:guest@127.0.0.1:5672/ts-celery-test';
/** Redis DB 11: the benchmark's counters, result backend and BullMQ queues. */
export const DEFAULT_REDIS = 'redis://127.0.0.1:6379/11';
/** Redis DB 10: the broker of the Redis-broker rows (kombu's lists), on the same Redis server as BullMQ. */
export const REDIS_BROKER = 'redis://127.0.0.1:6379/10';

/** Debian's python3-celery 5.2.6 with python3-eventlet (installed by scripts/services.sh). */
export const PYTHON = '/usr/bin/python3';

/** ioredis-style connection options for BullMQ from a redis:// URL. */
export function bullConnection(url: string): { host: string; port: number; db: number; maxRetriesPerRequest: null } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0), maxRetriesPerRequest: null };
}

/** Workload sizes. */
export interface Sizes {
  repetitions: number;
  /** Workload 1: no-op tasks queued, then drained. */
  noop: number;
  /** Workload 2: 100-ms tasks queued, then drained at -c 1000 (also workload 5's RSS). */
  sleep: number;
  /** Workload 8: 400-ms CPU-bound tasks queued, then drained by two threads / processes. */
  cpu: number;
  /** Workload 9: no-op tasks drained at -c 2 by -P threads and -P async (the thread hop's CPU). */
  hop: number;
  /** Workload 3: delay() calls timed for the rate, with `window` in flight. */
  producer: number;
  window: number;
  /** Calls made (and not timed) before timing starts: connection set-up, JIT. */
  warmup: number;
  /** Workload 3: single delay() calls, one at a time, `gapMs` apart. */
  single: number;
  gapMs: number;
  /** Workload 4: tasks sent at `e2eRate` per second. */
  e2e: number;
  e2eRate: number;
  /** Workload 6: header tasks of the chord (and plain tasks it is compared with). */
  chord: number;
  /** Workload 5: the long run for RSS growth (0 = skipped). */
  long: number;
  /** Give up on a drain when the count has not moved for this long. */
  stallMs: number;
}

export const FULL: Sizes = {
  repetitions: 3,
  noop: 20_000,
  sleep: 10_000,
  cpu: 30,
  hop: 10_000,
  producer: 20_000,
  window: 1_000,
  warmup: 500,
  single: 1_000,
  gapMs: 2,
  e2e: 1_000,
  e2eRate: 100,
  chord: 10_000,
  long: 100_000,
  stallMs: 30_000,
};

export const QUICK: Sizes = {
  repetitions: 1,
  noop: 1_000,
  sleep: 1_000,
  cpu: 4,
  hop: 500,
  producer: 1_000,
  window: 1_000,
  warmup: 50,
  single: 100,
  gapMs: 1,
  e2e: 100,
  e2eRate: 100,
  chord: 1_000,
  long: 0,
  stallMs: 15_000,
};
