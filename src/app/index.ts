/** The user-facing objects: the app, tasks, settings, routing. */
export { Celery, type CeleryConfig } from './celery.js';
export { Task } from './task.js';
export type { ApplyOptions, BoundTask, ErrorClass, RetryOptions, TaskFunction, TaskOptions, TaskRequest } from './task.js';
export { SETTINGS, defaultSettings, type CelerySettings, type QueueDefinition, type Route, type TaskRoutes } from './config.js';
export { resolveRoute, queueDeclaration, type ResolvedRoute } from './routing.js';
export { currentTaskRequest, runInTaskContext } from './context.js';
