/**
 * Per-task rate limits, as Celery's worker does them: the `rateLimit` task
 * option (`'10/s'`, `'100/m'`, `'1000/h'`, or a number = per second) gives
 * the task a token bucket of capacity 1 filled at that rate; a task that
 * finds no token waits in its bucket (its message stays unacked, as in
 * Celery) and is handed to the pool when the next token is due. The
 * `rate_limit` remote-control command changes a task's rate at run time.
 */
import { parseRate } from '../support/rate.js';
import type { PoolJob } from './pool.js';

export { parseRate } from '../support/rate.js';

/** kombu's `TokenBucket` (capacity 1 as Celery uses it), with the jobs waiting for a token. */
export class TokenBucket {
  private tokens: number;
  private timestamp: number;
  /** Jobs waiting for a token, in arrival order. */
  readonly contents: PoolJob[] = [];
  /** The timer that hands out the next token, if armed. */
  timer: NodeJS.Timeout | null = null;

  constructor(
    /** Tokens per second. */
    public fillRate: number,
    readonly capacity = 1,
    private readonly now: () => number = () => performance.now() / 1000,
  ) {
    this.tokens = capacity;
    this.timestamp = this.now();
  }

  /** Takes `n` tokens if there are that many. */
  canConsume(n = 1): boolean {
    if (n <= this.level()) {
      this.tokens -= n;
      return true;
    }
    return false;
  }

  /** Seconds until `n` tokens are available. */
  expectedTime(n = 1): number {
    const level = this.level();
    return (Math.max(n, level) - level) / this.fillRate;
  }

  private level(): number {
    // The timestamp advances even when full, so idle time at capacity is not counted as refill later.
    const now = this.now();
    if (this.tokens < this.capacity) this.tokens = Math.min(this.capacity, this.tokens + this.fillRate * (now - this.timestamp));
    this.timestamp = now;
    return this.tokens;
  }
}

export class RateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  /** Rates set at run time (`rate_limit` command), by task name; 0 = no limit. */
  private readonly overrides = new Map<string, number>();

  constructor(
    /** Hands a job that got its token to the pool. */
    private readonly dispatch: (job: PoolJob) => void,
    /** `worker_disable_rate_limits`. */
    private readonly disabled = false,
  ) {}

  /** The rate (tasks/s) in force for a task: a run-time override, else its `rateLimit` option; 0 = none. */
  rateOf(name: string, option: string | number | undefined): number {
    if (this.disabled) return 0;
    const override = this.overrides.get(name);
    if (override !== undefined) return override;
    if (option === undefined) return 0;
    try {
      return parseRate(option);
    } catch {
      return 0; // validated when the task was defined; never block a task on a bad value here
    }
  }

  /** Runs `job` now (no limit) or when its task's bucket has a token. */
  submit(name: string, option: string | number | undefined, job: PoolJob): void {
    const rate = this.rateOf(name, option);
    if (rate <= 0) return this.dispatch(job);
    let bucket = this.buckets.get(name);
    if (!bucket) this.buckets.set(name, (bucket = new TokenBucket(rate)));
    else bucket.fillRate = rate;
    bucket.contents.push(job);
    this.drain(bucket);
  }

  /** Changes a task's rate now (`rate_limit`); 0 lifts the limit and releases whatever waited. */
  setRate(name: string, rate: number): void {
    this.overrides.set(name, rate);
    const bucket = this.buckets.get(name);
    if (!bucket) return;
    if (rate > 0) {
      bucket.fillRate = rate;
      if (bucket.timer) clearTimeout(bucket.timer);
      bucket.timer = null;
      this.drain(bucket);
      return;
    }
    if (bucket.timer) clearTimeout(bucket.timer);
    this.buckets.delete(name);
    for (const job of bucket.contents.splice(0)) this.dispatch(job);
  }

  /** Jobs waiting for a token, all tasks. */
  get waiting(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.contents.length;
    return n;
  }

  private drain(bucket: TokenBucket): void {
    if (bucket.timer) return; // the armed timer drains it
    while (bucket.contents.length > 0) {
      if (!bucket.canConsume(1)) {
        bucket.timer = setTimeout(() => {
          bucket.timer = null;
          this.drain(bucket);
        }, Math.ceil(bucket.expectedTime(1) * 1000));
        return;
      }
      this.dispatch(bucket.contents.shift()!);
    }
  }

  /** Cancels every waiting job (warm shutdown gives their messages back). Returns how many. */
  cancelAll(): number {
    let n = 0;
    for (const bucket of this.buckets.values()) {
      if (bucket.timer) clearTimeout(bucket.timer);
      bucket.timer = null;
      for (const job of bucket.contents.splice(0)) {
        n++;
        job.cancel();
      }
    }
    return n;
  }
}
