/**
 * One ts-celery beat for `npm run bench:beat`, in its own process (the
 * benchmark samples its CPU and RSS): `new Beat(app)` as `ts-celery beat`
 * runs it, with N entries every second, measuring each run's send lag through
 * the `onSent` hook: due -> handed to the AMQP client (the message written, what
 * Celery's beat waits for) and due -> confirmed by RabbitMQ.
 *
 * Env: BENCH_BEAT_N, BENCH_BEAT_QUEUE, BENCH_BEAT_BROKER, BENCH_BEAT_MODE (`lease`: Redis lease
 * and state; `file`: the schedule file), BENCH_BEAT_REDIS, BENCH_BEAT_KEY, BENCH_BEAT_FILE,
 * BENCH_BEAT_PHASE (`spread`: entry i first due at start + 1 s + i/N s; `aligned`: all at once),
 * BENCH_BEAT_WARMUP_MS, BENCH_BEAT_WINDOW_MS, BENCH_BEAT_WINDOW (runs in flight at most; default beat's 2,000).
 * Prints one JSON line (sends, lag, confirmedLag) after the window, then runs until SIGTERM.
 */
import { Redis } from 'ioredis';
import { Beat, Celery, type BeatSchedule } from '../../src/index.js';
import { appTimezone } from '../../src/app/timezone.js';
import { leaseKeys, RedisLease, RedisStore } from '../../src/beat/lease.js';
import { FileStore, type SavedSchedule } from '../../src/beat/store.js';
import { getLogger } from '../../src/support/log.js';
import { startDiag } from './beat-diag.js';

const env = process.env;
const n = Number(env.BENCH_BEAT_N ?? 10_000);
const queue = env.BENCH_BEAT_QUEUE!;
const lease = env.BENCH_BEAT_MODE === 'lease';
const warmupMs = Number(env.BENCH_BEAT_WARMUP_MS ?? 5_000);
const windowMs = Number(env.BENCH_BEAT_WINDOW_MS ?? 20_000);

const schedule: BeatSchedule = {};
for (let i = 0; i < n; i++) schedule[`e${i}`] = { task: 'bench.beat_tick', schedule: 1, args: [i], options: { queue } };

const app = new Celery('beatbench', {
  broker_url: env.BENCH_BEAT_BROKER!,
  result_backend: lease ? env.BENCH_BEAT_REDIS! : null,
  beat_lease_url: lease ? env.BENCH_BEAT_REDIS! : false,
  beat_lease_key: env.BENCH_BEAT_KEY ?? null,
  beat_schedule_filename: env.BENCH_BEAT_FILE ?? 'bench-beat.json',
  task_queues: [{ name: queue, queue_arguments: { 'x-max-length': 1000 } }],
  task_default_queue: queue,
  beat_schedule: schedule,
});

/**
 * Entry i "last ran" at start + i/N s: the entries come due evenly over each second,
 * the first a second after `start` (beat is set up by then, so none is sent late and
 * bunched with others at its first run).
 */
async function seedPhases(start: number): Promise<void> {
  const state: SavedSchedule = { timezone: appTimezone(app.conf), utcEnabled: app.conf.enable_utc, entries: {} };
  for (let i = 0; i < n; i++) state.entries[`e${i}`] = { lastRunAt: start + Math.floor((i * 1000) / n), totalRunCount: 0 };
  if (lease) {
    const redis = new Redis(env.BENCH_BEAT_REDIS!);
    const l = new RedisLease(redis, leaseKeys(env.BENCH_BEAT_KEY!), 10_000, 'seed');
    if (!(await l.tryAcquire())) throw new Error('benchmark lease already held');
    await new RedisStore(l, 'seed').save(state);
    await l.release();
    redis.disconnect();
  } else {
    const store = new FileStore(env.BENCH_BEAT_FILE!, getLogger('seed'));
    await store.save(state);
    await store.close();
  }
}

/** p50, p99 and max of a sample, and how many exceed 50 ms. */
function summary(xs: number[]): { p50: number | null; p99: number | null; max: number | null; over50: number } {
  xs.sort((a, b) => a - b);
  const q = (p: number): number | null => (xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]! : null);
  return { p50: q(0.5), p99: q(0.99), max: xs.at(-1) ?? null, over50: xs.filter((x) => x > 50).length };
}

async function main(): Promise<void> {
  const started = Date.now();
  const windowFrom = started + warmupMs;
  const windowTo = windowFrom + windowMs;
  const confirmed: number[] = [];
  const written: number[] = [];
  // Runs awaiting their confirm, sampled at each send: how close beat came to its in-flight cap.
  let inFlight = 0;
  let inFlightMax = 0;
  const inFlightAtSend: number[] = [];

  const diag = startDiag(windowFrom, windowTo);
  if (env.BENCH_BEAT_PHASE === 'spread') await seedPhases(started);
  const beat = new Beat(app, {
    ...(env.BENCH_BEAT_WINDOW ? { maxInFlight: Number(env.BENCH_BEAT_WINDOW) } : {}),
    onSent: (_entry, t) => {
      // Counted by when the run was sent (as for Celery), not by when RabbitMQ confirmed it.
      if (t.dispatchedAt < windowFrom || t.dispatchedAt >= windowTo) return;
      inFlightAtSend.push(t.dispatchedAt, t.confirmedAt);
      confirmed.push(t.confirmedAt - t.dueAt);
      written.push(t.dispatchedAt - t.dueAt);
    },
  });
  beat.start();
  setTimeout(() => {
    // Sweep the [sent, confirmed) intervals: the most runs awaiting a confirm at once.
    const events: Array<[number, number]> = [];
    for (let i = 0; i < inFlightAtSend.length; i += 2) events.push([inFlightAtSend[i]!, 1], [inFlightAtSend[i + 1]!, -1]);
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [, d] of events) inFlightMax = Math.max(inFlightMax, (inFlight += d));
    const report = { windowFrom, windowTo, sends: confirmed.length, lag: summary(written), confirmedLag: summary(confirmed), inFlightMax, diag: diag.report() };
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }, windowTo - Date.now() + 3_000); // runs sent at the end of the window get their confirms meanwhile
  process.once('SIGTERM', () => {
    void beat.stop().then(() => app.close()).then(() => process.exit(0));
  });
}

// Started the way bin/ts-celery.js starts the CLI (tsx's in-thread require hook, no loader thread).
main().catch((err: unknown) => {
  process.stderr.write(`beat-runner: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
