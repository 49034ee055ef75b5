/**
 * `ts-celery/celery-node`: celery-node's API on ts-celery, so a celery-node
 * project moves over by changing one import:
 *
 * ```js
 * const celery = require('ts-celery/celery-node'); // was: require('celery-node')
 * const client = celery.createClient('amqp://', 'amqp://');
 * const result = client.createTask('tasks.add').applyAsync([1, 2]);
 * console.log(await result.get(5000));
 *
 * const worker = celery.createWorker('amqp://', 'amqp://');
 * worker.register('tasks.add', (a, b) => a + b); // kwargs arrive as the last argument
 * worker.start();
 * ```
 *
 * The names, arguments and calling convention are celery-node's (0.5.9);
 * acks, prefetch, retries, reconnects, logs and error shapes are ts-celery's.
 * The README's "Migrating from celery-node" section lists the differences.
 */
import { Client } from './client.js';
import { Worker } from './worker.js';

export { Client, Task } from './client.js';
export { Worker, type TaskHandler } from './worker.js';
export { AsyncResult } from './result.js';
export { defaultConf, DEFAULT_CONCURRENCY, type CeleryConf } from './conf.js';

/**
 * A client sending tasks to `queue` on `broker`, reading results from
 * `backend` (celery-node's defaults: `amqp://`, `amqp://`, `celery`).
 * Nothing connects until the first send.
 */
export function createClient(broker = 'amqp://', backend = 'amqp://', queue = 'celery'): Client {
  return new Client(broker, backend, queue);
}

/**
 * A worker consuming `queue` on `broker` and storing results in `backend`
 * (celery-node's defaults: `amqp://`, `amqp://`, `celery`). Nothing connects
 * until `start()`.
 */
export function createWorker(broker = 'amqp://', backend = 'amqp://', queue = 'celery'): Worker {
  return new Worker(broker, backend, queue);
}

/** For `import celery from 'ts-celery/celery-node'` (celery-node is CommonJS: its default import is the module). */
export default { createClient, createWorker };
