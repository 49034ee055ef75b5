/**
 * The task currently running in this async context. The worker runs each task
 * inside `runInTaskContext`, so a task sent from inside a task gets
 * `parent_id`/`root_id` automatically, as in Python.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { TaskRequest } from './task.js';

const storage = new AsyncLocalStorage<TaskRequest>();

/** Runs `fn` with `request` as the current task. */
export function runInTaskContext<T>(request: TaskRequest, fn: () => T): T {
  return storage.run(request, fn);
}

/** The request of the task running in this async context, if any. */
export function currentTaskRequest(): TaskRequest | undefined {
  return storage.getStore();
}
