/**
 * Bounded async concurrency: at most `limit` jobs run at once; the rest wait
 * in arrival order. This is `-c N` (the eventlet pool's equivalent, without
 * monkey-patching): N awaits in flight. A CPU-bound job still occupies the
 * one event loop while it computes; that work belongs in a process pool.
 */

/** A job that has not started yet. `cancel` is called instead of `run` when it never will. */
export interface PoolJob {
  run(): Promise<void>;
  cancel(): void;
}

export class ConcurrencyPool {
  private running = 0;
  private readonly waiting: PoolJob[] = [];
  private head = 0;
  private idleWaiters: Array<() => void> = [];
  /** Bound once: settling a job costs one promise reaction, not a closure per job. */
  private readonly onJobDone = (): void => this.finished();

  constructor(private max: number) {
    if (!(max >= 1)) throw new RangeError(`concurrency must be at least 1, got ${max}`);
  }

  /** Jobs that may run at once. */
  get limit(): number {
    return this.max;
  }

  /**
   * Changes the limit now (`pool_grow`/`pool_shrink`). Growing starts waiting
   * jobs at once; shrinking lets running jobs finish and starts new ones only
   * below the new limit.
   */
  resize(limit: number): void {
    if (!(limit >= 1) || !Number.isInteger(limit)) throw new RangeError(`concurrency must be a whole number of at least 1, got ${limit}`);
    this.max = limit;
    while (this.running < this.max && this.head < this.waiting.length) this.startNext();
  }

  private startNext(): void {
    const next = this.waiting[this.head]!;
    this.waiting[this.head++] = undefined as unknown as PoolJob;
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    this.start(next);
  }

  /** Jobs running now. */
  get active(): number {
    return this.running;
  }

  /** Jobs waiting for a slot. */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  submit(job: PoolJob): void {
    if (this.running < this.max) this.start(job);
    else this.waiting.push(job);
  }

  private start(job: PoolJob): void {
    this.running++;
    let promise: Promise<void>;
    try {
      promise = job.run();
    } catch (err) {
      promise = Promise.reject(err);
    }
    // Jobs handle their own errors; a rejection here must still free the slot.
    promise.then(this.onJobDone, this.onJobDone);
  }

  private finished(): void {
    this.running--;
    if (this.head < this.waiting.length) {
      // After a shrink, more than the new limit may still be running: start nothing until below it.
      if (this.running < this.max) this.startNext();
    } else if (this.running === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Removes and cancels every job that has not started (warm shutdown). */
  cancelPending(): number {
    const jobs = this.waiting.slice(this.head);
    this.waiting.length = 0;
    this.head = 0;
    for (const job of jobs) job.cancel();
    return jobs.length;
  }

  /** Resolves when nothing is running and nothing waits. */
  idle(): Promise<void> {
    if (this.running === 0 && this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
