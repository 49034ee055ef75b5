/**
 * The BullMQ comparison worker: one Node process, `concurrency` 1000 (or
 * BENCH_CONCURRENCY), the same task bodies as the other systems (job names
 * `noop`, `sleep100`, `stamp`; data `{ run, n, sentAt? }`).
 *
 *   tsx scripts/bench/bullmq-worker.ts   (env: BENCH_QUEUE, BENCH_REDIS, BENCH_CONCURRENCY)
 *
 * Prints "ready" once connected; closes on SIGTERM.
 */
import { Worker } from 'bullmq';
import { bullConnection, DEFAULT_REDIS } from './config.js';
import { Marker, nowMs, sleep } from './marker.js';

const env = process.env;
const redisUrl = env.BENCH_REDIS || DEFAULT_REDIS;
const marker = new Marker(redisUrl);

interface JobData {
  run: string;
  n: number;
  sentAt?: number;
}

const worker = new Worker<JobData>(
  env.BENCH_QUEUE ?? 'bench',
  async (job) => {
    const started = nowMs();
    const { run, n } = job.data;
    if (job.name === 'sleep100') await sleep(100);
    if (job.name === 'stamp') return marker.stamp(run, n, job.data.sentAt ?? started, started);
    return marker.done(run, n, started);
  },
  { connection: bullConnection(redisUrl), concurrency: Number(env.BENCH_CONCURRENCY ?? 1000) },
);
worker.on('error', (err) => process.stderr.write(`bullmq worker error: ${err.message}\n`));
await worker.waitUntilReady();
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  void (async () => {
    await worker.close().catch(() => undefined);
    await marker.close();
    process.exit(0);
  })();
});
