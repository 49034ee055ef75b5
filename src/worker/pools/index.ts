/** The worker's pools (`-P async|threads`), behind one interface (types.ts). */
import type { Celery } from '../../app/celery.js';
import type { PoolName } from '../../app/config.js';
import { ImproperlyConfigured } from '../../errors.js';
import { AsyncPool } from './async.js';
import { ThreadPool } from './threads.js';
import type { WorkerPool } from './types.js';

export type { PoolInfo, PoolName, TaskCall, WorkerPool } from './types.js';
export { AsyncPool } from './async.js';
export { ThreadPool } from './threads.js';

export interface PoolOptions {
  name: PoolName;
  limit: number;
  app: Celery;
  hostname: string;
  /** The module that exports the app: required by `threads`, whose threads each load it. */
  appModule?: string | undefined;
}

/** The pool `-P`/`worker_pool` names, with the app's recycling and resource settings. */
export function createPool(options: PoolOptions): WorkerPool {
  const { name, limit, app } = options;
  if (name === 'async') {
    for (const setting of ['worker_max_tasks_per_child', 'worker_max_memory_per_child', 'worker_thread_resource_limits'] as const) {
      if (app.conf[setting] !== null) process.emitWarning(`Setting ${setting} applies to the threads pool (-P threads) only; the async pool has no children to recycle`, 'TsCeleryWarning');
    }
    return new AsyncPool(limit);
  }
  if (!options.appModule) {
    throw new ImproperlyConfigured(
      'The threads pool loads the app in each of its threads: give the Worker the module that exports the app ' +
        "(new Worker(app, { pool: 'threads', appModule: '/path/to/tasks.ts', ... })); `ts-celery worker -A` does this by itself",
    );
  }
  return new ThreadPool({
    limit,
    app,
    appModule: options.appModule,
    hostname: options.hostname,
    maxTasksPerChild: app.conf.worker_max_tasks_per_child,
    maxMemoryPerChild: app.conf.worker_max_memory_per_child,
    resourceLimits: app.conf.worker_thread_resource_limits,
  });
}
