/**
 * Holding ETA/countdown tasks until they are due.
 *
 * Held messages stay unacked (a crash redelivers them) and do not occupy a
 * concurrency slot. Like Python Celery, the worker raises the consumer's
 * prefetch by one for each held message, so held tasks do not starve new
 * ones, but only up to `worker_eta_task_limit`: past it, memory stays bounded
 * and the worker parks further ETA tasks in the broker instead (see
 * worker.ts). Timers longer than Node's maximum are re-armed.
 */

const MAX_TIMER_MS = 2 ** 31 - 1;

export interface HeldTask {
  /** Epoch ms when the task is due. */
  readonly dueAt: number;
  /** Called once when due. */
  fire(): void;
  /** Called instead of `fire` when the worker shuts down first. */
  release(): void;
}

export class EtaScheduler {
  private readonly held = new Map<HeldTask, NodeJS.Timeout>();

  constructor(
    /** Maximum tasks held at once (null = unbounded). */
    readonly limit: number | null,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** True when one more task may be held in memory. */
  hasRoom(): boolean {
    return this.limit === null || this.held.size < this.limit;
  }

  hold(task: HeldTask): void {
    this.arm(task);
  }

  private arm(task: HeldTask): void {
    const wait = task.dueAt - Date.now();
    const timer = setTimeout(() => {
      if (task.dueAt - Date.now() > 0) return this.arm(task); // re-armed after a capped wait
      this.held.delete(task);
      task.fire();
    }, Math.max(0, Math.min(wait, MAX_TIMER_MS)));
    this.held.set(task, timer);
  }

  /** Stops every timer and releases every held task (warm shutdown). */
  releaseAll(): number {
    const tasks = [...this.held.keys()];
    for (const [, timer] of this.held) clearTimeout(timer);
    this.held.clear();
    for (const task of tasks) task.release();
    return tasks.length;
  }
}
