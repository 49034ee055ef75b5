/**
 * Workload 9's worker: the thread hop's CPU, with nothing else in the way. A ts-celery Worker
 * (the class `ts-celery worker` runs) at -c 2 with `-P threads` or `-P async` (POOL), draining
 * `bench.nothing` tasks, whose function does nothing at all. Completions are counted here, in
 * the main thread, from the worker's `task-finished` events, and written to Redis every 20 ms
 * (no I/O per task), so what differs between the two pools is where the function ran: on the
 * main event loop, or in a worker thread and back.
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
// Counted in memory and written every 20 ms: a Redis write per task would add I/O of its own,
// batched differently in the two pools (two completions in one tick share a write on -P async).
let count = 0;
let written = 0;
let first: number | null = null;
let last = 0;
worker.on('task-finished', () => {
  last = nowMs();
  first ??= last;
  count++;
});
setInterval(() => {
  if (count === written) return;
  written = count;
  void redis.set(keys.first, first!.toFixed(3), 'NX');
  void redis.mset(keys.last, last.toFixed(3), keys.count, String(count));
}, 20).unref();
process.once('SIGTERM', () => {
  void worker.stop().then(() => app.close()).then(() => redis.quit()).then(() => process.exit(0));
});
await worker.start();
