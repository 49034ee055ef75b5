/** The threads pool's bookkeeping: one call in flight (ThreadJob) and one pool thread (PoolThread). */
import type { MessagePort, Worker as NodeWorker } from 'node:worker_threads';
import { ImproperlyConfigured, type Retry } from '../../errors.js';
import type { TaskCall } from './types.js';

/**
 * One call of a task's function, from the moment the pool has it until it settles. It is what
 * `invoke()` returns: a minimal thenable rather than a Promise of its own, one allocation and one
 * microtask fewer per task (the run, execute.ts, awaits it through `then(resolve, reject)`).
 * Callbacks run once, when the call settles (at once if it already has).
 */
export class ThreadJob {
  thread: PoolThread | null = null;
  /** The main thread's Retry of each `self.retry()` the thread's run made, by number. */
  readonly retries = new Map<number, Retry>();
  settled = false;
  private outcome: { ok: boolean; value: unknown } | null = null;
  private callbacks: Array<[(value: unknown) => void, (err: unknown) => void]> = [];

  constructor(
    readonly seq: number,
    readonly call: TaskCall,
    readonly args: unknown[],
    /** Soft time limit (s): the thread aborts `self.signal` itself. */
    readonly softLimit: number | null,
  ) {}

  then(onFulfilled: (value: unknown) => void, onRejected: (err: unknown) => void): void {
    const outcome = this.outcome;
    if (!outcome) this.callbacks.push([onFulfilled, onRejected]);
    else if (outcome.ok) onFulfilled(outcome.value);
    else onRejected(outcome.value);
  }

  resolve(value: unknown): void {
    this.settle(true, value);
  }

  reject(err: unknown): void {
    this.settle(false, err);
  }

  private settle(ok: boolean, value: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.outcome = { ok, value };
    const callbacks = this.callbacks;
    this.callbacks = [];
    for (const [onFulfilled, onRejected] of callbacks) {
      if (ok) onFulfilled(value);
      else onRejected(value);
    }
  }
}

export type ThreadState = 'starting' | 'idle' | 'busy' | 'stopping';

/** One pool thread. `stopping`: terminated or terminating, never given work again. */
export class PoolThread {
  state: ThreadState = 'starting';
  job: ThreadJob | null = null;
  tasksRun = 0;
  /** Set once the thread loaded the app. */
  loadedApp = false;
  /** Why it died, from its `error` event (uncaught error, out of memory) or its load failure. */
  failure: string | null = null;
  /** Kept from the start: Node reports -1 once the thread has exited. */
  readonly threadId: number;
  readonly exited: Promise<number>;
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private markFailed!: (err: Error) => void;

  constructor(
    readonly name: string,
    readonly worker: NodeWorker,
    /** Where `request.properties` go when the thread's task reads them, and the flag it waits on. */
    readonly propertiesPort: MessagePort,
    readonly propertiesFlag: Int32Array,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.markReady = resolve;
      this.markFailed = reject;
    });
    this.ready.catch(() => undefined); // start() reports it; a replacement's failure is logged
    this.threadId = worker.threadId;
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
  }

  loaded(): void {
    this.loadedApp = true;
    if (this.state === 'starting') this.state = 'idle';
    this.markReady();
  }

  loadFailed(why: string): void {
    this.markFailed(new ImproperlyConfigured(`A worker thread (-P threads) could not load the app: ${why}`));
  }
}
