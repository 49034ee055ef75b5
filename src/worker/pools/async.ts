/**
 * `-P async`, the default pool: every task's function runs on the main event loop, up to
 * `limit` awaits in flight (the eventlet pool's place in Celery, without monkey-patching).
 * A CPU-bound task blocks everything else while it computes; those belong in `-P threads`.
 */
import { SoftTimeLimitExceeded, TimeLimitExceeded } from '../../errors.js';
import { ConcurrencyPool } from '../pool.js';
import type { PoolInfo, PoolJob, TaskCall, TaskLimits, WorkerPool } from './types.js';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value instanceof Promise || (value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function');
}

/** A promise-returning call still running, that `terminate()` or the hard limit can end early. */
interface Stoppable {
  call: TaskCall;
  stop(reason: Error): void;
}

export class AsyncPool implements WorkerPool {
  readonly name = 'async';
  private readonly queue: ConcurrencyPool;
  /** Calls awaiting a promise, by task id: what terminate() can reach. */
  private readonly running = new Map<string, Stoppable>();

  constructor(limit: number) {
    this.queue = new ConcurrencyPool(limit);
  }

  get limit(): number {
    return this.queue.limit;
  }

  get active(): number {
    return this.queue.active;
  }

  get pending(): number {
    return this.queue.pending;
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  submit(job: PoolJob): void {
    this.queue.submit(job);
  }

  cancelPending(): number {
    return this.queue.cancelPending();
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  resize(limit: number): void {
    this.queue.resize(limit);
  }

  invoke(call: TaskCall, args: unknown[], limits: TaskLimits): unknown {
    const { hard, soft } = limits;
    let softTimer: NodeJS.Timeout | null = null;
    if (soft) {
      const controller = call.aborter();
      softTimer = setTimeout(() => controller.abort(new SoftTimeLimitExceeded(`SoftTimeLimitExceeded(${soft})`)), soft * 1000);
    }
    let returned: unknown;
    try {
      returned = call.callHere(args);
    } catch (err) {
      if (softTimer) clearTimeout(softTimer);
      throw err;
    }
    if (!isThenable(returned)) {
      if (softTimer) clearTimeout(softTimer);
      return returned;
    }
    return this.await(call, returned, hard, softTimer);
  }

  /** Awaits the task's promise unless the hard limit or terminate() comes first. */
  private await(call: TaskCall, returned: PromiseLike<unknown>, hard: number | null, softTimer: NodeJS.Timeout | null): Promise<unknown> {
    const id = call.message.id;
    let hardTimer: NodeJS.Timeout | null = null;
    const done = new Promise<unknown>((resolve, reject) => {
      const entry: Stoppable = { call, stop: reject };
      this.running.set(id, entry);
      // The promise cannot be killed: on the hard limit the slot is freed and its late result ignored.
      if (hard) hardTimer = setTimeout(() => reject(new TimeLimitExceeded(`TimeLimitExceeded(${hard})`, hard)), hard * 1000);
      returned.then(resolve, reject);
    });
    const cleanUp = (): void => {
      if (softTimer) clearTimeout(softTimer);
      if (hardTimer) clearTimeout(hardTimer);
      if (this.running.get(id)?.call === call) this.running.delete(id);
    };
    return done.finally(cleanUp);
  }

  terminate(taskId: string, reason: Error): boolean {
    const entry = this.running.get(taskId);
    if (!entry) return false;
    entry.call.aborter().abort(reason); // so a task that listens to self.signal stops its work
    entry.stop(reason);
    return true;
  }

  info(): PoolInfo {
    return { implementation: 'async', 'max-concurrency': this.limit, processes: [process.pid], 'max-tasks-per-child': null, 'max-memory-per-child': null };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
