/**
 * Workload 7's worker: the thread hop's CPU, with nothing else in the way. A ts-celery Worker
 * (the class `ts-celery worker` runs) at -c 2 with `-P threads` or `-P async` (POOL), draining
 * `bench.nothing` tasks, whose function does nothing at all. Completions are counted here, in
 * the main thread, from the worker's `task-finished` events (INCR + SET last, auto-pipelined:
 * the same cost in both pools), so the only difference between the two pools is where the
 * function ran: on the main event loop, or in a worker thread and back.
 *
 * Env: POOL (async|threads), BENCH_QUEUE (`bench.<run>`), BENCH_BROKER, BENCH_REDIS.
 */
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Worker } from 'ts-celery';
import { app } from './bench-app.js';
import { runKeys, nowMs } from './marker.js';

const pool = process.env.POOL === 'threads' ? 'threads' : 'async';
const queue = process.env.BENCH_QUEUE!;
const keys = runKeys(queue.replace(/^bench\./, ''));
const redis = new Redis(process.env.BENCH_REDIS!, { enableAutoPipelining: true, maxRetriesPerRequest: null });
const appModule = fileURLToPath(new URL('./bench-app.ts', import.meta.url));
const worker = new Worker(app, { hostname: `bench-hop-${pool}-${process.pid}@bench`, concurrency: 2, queues: [queue], pool, appModule });
let first = true;
worker.on('task-finished', () => {
  const now = nowMs().toFixed(3);
  if (first) {
    first = false;
    void redis.set(keys.first, now, 'NX');
  }
  void redis.incr(keys.count);
  void redis.set(keys.last, now);
});
process.once('SIGTERM', () => {
  void worker.stop().then(() => app.close()).then(() => redis.quit()).then(() => process.exit(0));
});
await worker.start();
