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
 *
 * Settings from the environment: BENCH_BROKER (default the test vhost),
 * BENCH_BACKEND (empty or unset = no result backend), BENCH_QUEUE
 * (task_default_queue), BENCH_QUEUE_TYPE (task_default_queue_type: classic or
 * quorum), BENCH_REDIS (where tasks count; default Redis DB 11).
 */
import { Celery } from 'ts-celery';
import { DEFAULT_BROKER, DEFAULT_REDIS } from './config.js';
import { Marker, nowMs, sleep } from './marker.js';

export interface BenchAppOptions {
  broker?: string | undefined;
  /** Result backend URL; empty/undefined = none. */
  backend?: string | undefined;
  queue?: string | undefined;
  redis?: string | undefined;
  /** `task_default_queue_type` (default classic). */
  queueType?: string | undefined;
}

/** A bench app and its tasks (a producer process makes its own with the queue it needs). */
export function createBenchApp(options: BenchAppOptions) {
  const app = new Celery('bench', {
    broker_url: options.broker || DEFAULT_BROKER,
    result_backend: options.backend || null,
    task_default_queue: options.queue || 'bench',
    task_default_queue_type: options.queueType === 'quorum' ? 'quorum' : 'classic',
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
  return { app, marker, tasks: { noop, sleep100, stamp, chordBody } };
}

const env = process.env;
/** The app the worker loads (`-A scripts/bench/bench-app.ts`). */
export const { app } = createBenchApp({ broker: env.BENCH_BROKER, backend: env.BENCH_BACKEND, queue: env.BENCH_QUEUE, redis: env.BENCH_REDIS, queueType: env.BENCH_QUEUE_TYPE });
