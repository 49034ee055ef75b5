/**
 * The ts-celery app the benchmark runs, as a user would write it:
 *
 *   ts-celery worker -A scripts/bench/bench-app.ts -c 1000 -Q <queue> -l warning
 *
 * Tasks (the same names as scripts/bench/pybench.py):
 *   bench.noop(run, n)             count the completion (see marker.ts)
 *   bench.sleep100(run, n)         await 100 ms (a slow SMS provider), then count
 *   bench.stamp(run, n, sentAt)    record send -> start latency, then count
 *   bench.chord_body(values, run)  a chord's body: records when it ran and how many results it got
 *   bench.cpu400(run, n)           compute for 400 ms of CPU (BENCH_CPU_ITERATIONS of work()), then count
 *   bench.nothing(run, n)          nothing at all (hop-worker.ts counts it in the main thread)
 *
 * Settings from the environment: BENCH_BROKER (default the test vhost),
 * BENCH_BACKEND (empty or unset = no result backend), BENCH_QUEUE
 * (task_default_queue), BENCH_QUEUE_TYPE (task_default_queue_type: classic or
 * quorum), BENCH_REDIS (where tasks count; default Redis DB 11),
 * BENCH_ACKS_LATE=1 (task_acks_late: ack only after the result is stored).
 */
import { Celery } from 'ts-celery';
import { DEFAULT_BROKER, DEFAULT_REDIS } from './config.js';
import { Marker, nowMs, sleep } from './marker.js';

/** How much CPU `bench.cpu400` uses. */
export const CPU_TASK_MS = 400;

/**
 * A fixed amount of pure computation: `iterations` steps of an integer hash. A fixed amount, not
 * "until 400 ms have passed", so that a task that gets only part of a core takes longer.
 */
export function work(iterations: number): number {
  let x = 0;
  for (let i = 0; i < iterations; i++) x = (x * 31 + i) | 0;
  return x;
}

/** The iterations of work() that take `ms` of CPU on this machine (measured with process.cpuUsage, in a single-threaded process). */
export function calibrateWork(ms: number): number {
  work(1e6); // warm up the JIT
  for (let n = 1e6; ; n *= 2) {
    const before = process.cpuUsage();
    work(n);
    const used = process.cpuUsage(before);
    const usedMs = (used.user + used.system) / 1000;
    if (usedMs >= 200) return Math.round((n * ms) / usedMs);
  }
}

export interface BenchAppOptions {
  broker?: string | undefined;
  /** Result backend URL; empty/undefined = none. */
  backend?: string | undefined;
  queue?: string | undefined;
  redis?: string | undefined;
  /** `task_default_queue_type` (default classic). */
  queueType?: string | undefined;
  acksLate?: boolean | undefined;
}

/** A bench app and its tasks (a producer process makes its own with the queue it needs). */
export function createBenchApp(options: BenchAppOptions) {
  const app = new Celery('bench', {
    broker_url: options.broker || DEFAULT_BROKER,
    result_backend: options.backend || null,
    task_default_queue: options.queue || 'bench',
    task_default_queue_type: options.queueType === 'quorum' ? 'quorum' : 'classic',
    task_acks_late: options.acksLate ?? false,
  });
  const marker = new Marker(options.redis || DEFAULT_REDIS);
  const noop = app.task({ name: 'bench.noop' }, async (run: string, n: number) => {
    await marker.done(run, n, nowMs());
  });
  const sleep100 = app.task({ name: 'bench.sleep100' }, async (run: string, n: number) => {
    const started = nowMs();
    await sleep(100);
    await marker.done(run, n, started);
  });
  const stamp = app.task({ name: 'bench.stamp' }, async (run: string, n: number, sentAt: number) => {
    await marker.stamp(run, n, sentAt, nowMs());
  });
  const chordBody = app.task({ name: 'bench.chord_body' }, async (values: unknown[], run: string) => {
    await marker.body(run, values.length);
  });
  const cpu400 = app.task({ name: 'bench.cpu400' }, async (run: string, n: number) => {
    const started = nowMs();
    work(Number(process.env.BENCH_CPU_ITERATIONS) || 200_000_000);
    await marker.done(run, n, started);
  });
  const nothing = app.task({ name: 'bench.nothing' }, (_run: string, _n: number) => undefined);
  return { app, marker, tasks: { noop, sleep100, stamp, chordBody, cpu400, nothing } };
}

const env = process.env;
/** The app the worker loads (`-A scripts/bench/bench-app.ts`). */
export const { app } = createBenchApp({ broker: env.BENCH_BROKER, backend: env.BENCH_BACKEND, queue: env.BENCH_QUEUE, redis: env.BENCH_REDIS, queueType: env.BENCH_QUEUE_TYPE, acksLate: env.BENCH_ACKS_LATE === '1' });
