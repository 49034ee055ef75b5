/**
 * The raw ceiling consumer: plain amqplib in one Node process, prefetch
 * 1000, one basic.ack per message (on arrival; for the 100-ms task after it
 * finished, so at most 1000 run at once), and the same per-task work as every
 * other system (read the `[args, kwargs, embed]` body, count the task in
 * Redis; see marker.ts). No Celery semantics at all.
 *
 *   tsx scripts/bench/raw-worker.ts      (env: BENCH_BROKER, BENCH_QUEUE, BENCH_REDIS, BENCH_PREFETCH)
 *
 * Prints "ready" once consuming; exits on SIGTERM after closing the channel.
 */
import { DEFAULT_BROKER, DEFAULT_REDIS } from './config.js';
import { Marker, nowMs, sleep } from './marker.js';
import { connectRaw } from './raw.js';

const env = process.env;
const queue = env.BENCH_QUEUE ?? 'bench';
const marker = new Marker(env.BENCH_REDIS || DEFAULT_REDIS);

const conn = await connectRaw(env.BENCH_BROKER || DEFAULT_BROKER);
const ch = await conn.createChannel();
await ch.prefetch(Number(env.BENCH_PREFETCH ?? 1000));
await ch.assertQueue(queue, { durable: true });

async function run(task: string | undefined, args: unknown[]): Promise<void> {
  const started = nowMs();
  const [run, n] = args as [string, number];
  if (task === 'bench.sleep100') await sleep(100);
  if (task === 'bench.stamp') return marker.stamp(run, n, args[2] as number, started);
  return marker.done(run, n, started);
}

await ch.consume(queue, (m) => {
  if (!m) return;
  const task = m.properties.headers?.task as string | undefined;
  const [args] = JSON.parse(m.content.toString()) as [unknown[]];
  if (task === 'bench.sleep100') {
    // The 100-ms workload's ceiling: at most `prefetch` (1000) tasks in flight, like -c 1000,
    // so each message is acked when its task finished.
    void run(task, args).then(() => ch.ack(m));
    return;
  }
  ch.ack(m);
  void run(task, args);
});
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  void (async () => {
    await ch.close().catch(() => undefined);
    await conn.close().catch(() => undefined);
    await marker.close();
    process.exit(0);
  })();
});
