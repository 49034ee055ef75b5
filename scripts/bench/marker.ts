/**
 * How every benchmark task reports that it ran, in every system (ts-celery,
 * the raw amqplib consumer, BullMQ; pybench.py does the same in Python):
 *
 *   bench:<run>:first  SET NX  the time the first task of the run started (once per process)
 *   bench:<run>:count  INCR    one per completed task (exact completion count)
 *   bench:<run>:last   SET     the time the counter reached n (the last completion)
 *   bench:<run>:lat    RPUSH   for `stamp` tasks: ms from the producer's send to the task's start
 *   bench:<run>:body   RPUSH   for a chord's body: `<time it ran>|<results it got>` (one entry per run)
 *
 * Times are epoch milliseconds with sub-ms precision. The Redis client
 * auto-pipelines, so 1,000 concurrent tasks share round trips.
 */
import { Redis } from 'ioredis';

/** Epoch ms with sub-millisecond precision. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Redis keys of one measured run. */
export function runKeys(run: string): { first: string; count: string; last: string; lat: string; body: string } {
  return { first: `bench:${run}:first`, count: `bench:${run}:count`, last: `bench:${run}:last`, lat: `bench:${run}:lat`, body: `bench:${run}:body` };
}

export class Marker {
  private client: Redis | null = null;
  private readonly started = new Set<string>();

  constructor(private readonly url: string) {}

  private get redis(): Redis {
    this.client ??= new Redis(this.url, { enableAutoPipelining: true, maxRetriesPerRequest: null });
    return this.client;
  }

  /** A task of `run` (n tasks in all) that started at `startedAt` has finished. */
  async done(run: string, n: number, startedAt: number): Promise<void> {
    const keys = runKeys(run);
    if (!this.started.has(run)) {
      this.started.add(run);
      void this.redis.set(keys.first, startedAt.toFixed(3), 'NX');
    }
    const count = await this.redis.incr(keys.count);
    if (count === n) await this.redis.set(keys.last, nowMs().toFixed(3));
  }

  /** A `stamp` task sent at `sentAt` started at `startedAt`: record the latency, then count it. */
  async stamp(run: string, n: number, sentAt: number, startedAt: number): Promise<void> {
    void this.redis.rpush(runKeys(run).lat, (startedAt - sentAt).toFixed(3));
    await this.done(run, n, startedAt);
  }

  /** A chord's body ran with `results` header results. */
  async body(run: string, results: number): Promise<void> {
    await this.redis.rpush(runKeys(run).body, `${nowMs().toFixed(3)}|${results}`);
  }

  async close(): Promise<void> {
    await this.client?.quit().catch(() => undefined);
    this.client = null;
  }
}

/** Sleeps `ms` (the simulated slow SMS provider). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
