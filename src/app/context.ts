/**
 * The task currently running in this async context. The worker runs each task
 * inside `runInTaskContext`, so a task sent from inside a task gets
 * `parent_id`/`root_id` automatically, as in Python.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { TaskRequest } from './task.js';

/** What the worker stores per running task: its request, built on first use. */
export interface TaskContextSource {
  readonly request: TaskRequest;
  /**
   * Records a result of something this task sent (a task, a group), for the
   * `children` Celery stores with the task's own result.
   */
  addChild?(child: { asTuple(): unknown }): void;
  /** The result tuples recorded so far. */
  children?(): unknown[];
}

const storage = new AsyncLocalStorage<TaskContextSource>();

/** Runs `fn` with `source` as the current task. */
export function runInTaskContext<T>(source: TaskContextSource, fn: () => T): T {
  return storage.run(source, fn);
}

/** The request of the task running in this async context, if any. */
export function currentTaskRequest(): TaskRequest | undefined {
  return storage.getStore()?.request;
}

/** The running task's context (request and children), if any. */
export function currentTaskContext(): TaskContextSource | undefined {
  return storage.getStore();
}
