/**
 * `-P async`, the default pool: every task's function runs on the main event loop, up to
 * `limit` awaits in flight (the eventlet pool's place in Celery, without monkey-patching).
 * A CPU-bound task blocks everything else while it computes; those belong in `-P threads`.
 * A promise cannot be killed: time limits and terminate end the run's wait for it (execute.ts).
 */
import { ConcurrencyPool } from '../pool.js';
import type { PoolInfo, PoolJob, TaskCall, WorkerPool } from './types.js';

export class AsyncPool implements WorkerPool {
  readonly name = 'async';
  private readonly queue: ConcurrencyPool;

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

  invoke(call: TaskCall, args: unknown[]): unknown {
    return call.callHere(args);
  }

  terminate(): boolean {
    return false;
  }

  info(): PoolInfo {
    return { implementation: 'async', 'max-concurrency': this.limit, processes: [process.pid], 'max-tasks-per-child': null, 'max-memory-per-child': null };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
