/**
 * Celery's built-in tasks that canvases send, registered on every app so a
 * TypeScript worker runs them as a Python worker does: `celery.accumulate`
 * (task replacement with a group), `celery.map` / `celery.starmap`
 * (`add.map()`, `add.starmap()`, chunks) and `celery.chunks`.
 */
import type { Celery } from '../app/celery.js';
import type { BoundTask, Task } from '../app/task.js';
import { NotRegistered } from '../errors.js';
import { bindArguments, paramsOfTask } from '../worker/arguments.js';
import { ChunksSignature } from './maps.js';
import { maybeSignature } from './signature.js';

/** Calls a registered task's function in this process, as Python's `task(*args)` does. */
async function callInline(app: Celery, self: BoundTask, sig: unknown, args: unknown[]): Promise<unknown> {
  const name = maybeSignature(sig, app).task;
  const task = app.tasks.get(name) as Task<never, unknown> | undefined;
  if (!task) throw new NotRegistered(name);
  const bound = bindArguments(name, paramsOfTask(task), args, {});
  const fn = task.fn as (...a: unknown[]) => unknown;
  return task.bound ? fn(self, ...bound) : fn(...bound);
}

/** Registers the built-in tasks on `app` (hidden from the worker banner, as in Celery). */
export function registerBuiltinTasks(app: Celery): void {
  app.task(
    { name: 'celery.accumulate', bind: true, params: ['*args', '**kwargs'] },
    (_self, args: unknown[], kwargs: Record<string, unknown>) => {
      const index = kwargs.index;
      return typeof index === 'number' ? args[index] : args;
    },
  );
  app.task({ name: 'celery.map', bind: true, params: ['task', 'it'] }, async (self, task: unknown, it: unknown[]) => {
    const out: unknown[] = [];
    for (const item of it) out.push(await callInline(app, self, task, [item]));
    return out;
  });
  app.task({ name: 'celery.starmap', bind: true, params: ['task', 'it'] }, async (self, task: unknown, it: unknown[][]) => {
    const out: unknown[] = [];
    for (const item of it) out.push(await callInline(app, self, task, item));
    return out;
  });
  app.task({ name: 'celery.chunks', params: ['task', 'it', 'n'] }, (task: unknown, it: unknown[][], n: number) =>
    new ChunksSignature(maybeSignature(task, app), it, n, {}, app).apply([], {}, {}),
  );
}
