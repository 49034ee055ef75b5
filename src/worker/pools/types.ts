/**
 * The worker's pool (`-P`): how many tasks run at once, where a task's function runs,
 * and how a running task is stopped. The worker queues every run through it and the
 * task run (execute.ts) calls the function through it; everything else (stores, retries,
 * acks) stays with the worker in the main thread, whatever the pool.
 *
 * - `async` (the default): the function runs on the main event loop; up to N awaits in flight.
 * - `threads`: the function runs in one of N worker threads that each loaded the app.
 */
import type { Task } from '../../app/task.js';
import type { RetryOptions } from '../../app/task.js';
import type { DeliveryInfo } from '../../broker/types.js';
import type { PoolName } from '../../app/config.js';
import type { Retry } from '../../errors.js';
import type { TaskMessage } from '../../protocol/message.js';
import type { PoolJob } from '../pool.js';

export type { PoolJob, PoolName };

/** One run of a task, as a pool sees it (implemented by execute.ts's TaskRun). */
export interface TaskCall {
  readonly task: Task<never, unknown>;
  readonly message: TaskMessage;
  readonly deliveryInfo: DeliveryInfo;
  /** The message's properties (`self.request.properties`), built when read. */
  readonly properties: Record<string, unknown>;
  /** Calls the function here, on this thread, with its `self` and task context. */
  callHere(args: unknown[]): unknown;
  /** The run's AbortController (`self.signal` on this thread), created on first use. */
  aborter(): AbortController;
  /**
   * `self.retry(options)` on the main thread: publishes the next run and returns the
   * `Retry` the run ends with. A worker thread's `self.retry()` comes here.
   */
  retry(options: RetryOptions): Retry;
  /** Records a result of something the task sent (stored as the task's `children`). */
  addChild(child: { asTuple(): unknown }): void;
}

/** What `inspect stats` shows of a pool (Celery's `pool` section). */
export interface PoolInfo {
  implementation: PoolName;
  'max-concurrency': number;
  /** Thread ids of the pool threads (Celery lists the child pids). */
  processes: number[];
  'max-tasks-per-child': number | null;
  'max-memory-per-child': number | null;
}

export interface WorkerPool {
  readonly name: PoolName;
  /** Tasks that may run at once (`-c`). */
  readonly limit: number;
  /** Tasks running now. */
  readonly active: number;
  /** Tasks waiting for a slot. */
  readonly pending: number;
  /** Gets ready to run tasks (threads: starts them and waits until each loaded the app). */
  start(): Promise<void>;
  /** Queues a run; it starts when a slot is free. */
  submit(job: PoolJob): void;
  /** Cancels every run that has not started (warm shutdown); returns how many. */
  cancelPending(): number;
  /** Resolves when nothing runs and nothing waits. */
  idle(): Promise<void>;
  /**
   * Calls the task's function for `call` with bound `args`. Returns the function's value, or
   * a promise of it; throws or rejects with what it threw. `softLimit` (seconds) is for a pool
   * whose function runs elsewhere: it aborts `self.signal` there (the run's own timer aborts
   * the main thread's). The hard time limit and `revoke(terminate=True)` belong to the run
   * (execute.ts): it stops waiting for the call and asks {@link terminate} to stop it.
   */
  invoke(call: TaskCall, args: unknown[], softLimit: number | null): unknown;
  /**
   * Changes how many tasks run at once, now (`pool_grow`/`pool_shrink`). Threads are started
   * to grow; to shrink, idle threads stop at once and busy ones after their task.
   */
  resize(limit: number): void;
  /**
   * Stops the function of the running task with this id now (its hard time limit, a revoke
   * with terminate): the threads pool kills the thread, ends the call with `reason` and
   * starts another thread. The async pool cannot stop a promise (the run stops waiting for it
   * and ignores what it does later): false, as when no such task is running.
   */
  terminate(taskId: string, reason: Error): boolean;
  /** For `inspect stats`. */
  info(): PoolInfo;
  /** Ends the pool (threads: stops them). Call after idle(). */
  close(): Promise<void>;
}
