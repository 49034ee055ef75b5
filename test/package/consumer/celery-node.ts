// celery-node's API from ts-celery/celery-node, type-checked as a consumer's compiler sees it.
import celery, { createClient, createWorker, type AsyncResult, type CeleryConf, type Client, type Worker } from 'ts-celery/celery-node';

export const client: Client = createClient('amqp://', 'amqp://', 'tasks');
client.conf.TASK_PROTOCOL = 1;
const result: AsyncResult = client.createTask('tasks.add').applyAsync([1, 2], { k: 1 });

export async function run(): Promise<number> {
  const value: number = await result.get(1000); // `any`, as celery-node declares it
  const status: string | null = await result.status();
  await client.sendTask('tasks.add', [1, 2], {}, 'my-id').sent;
  await client.disconnect();
  return value + (status === 'SUCCESS' ? 0 : 1);
}

export const worker: Worker = createWorker();
worker.register('tasks.add', (a: number, b: number, kwargs: Record<string, unknown>) => a + b + Object.keys(kwargs).length);
const conf: CeleryConf = worker.conf;
conf.TS_CELERY = { worker_concurrency: 100, task_acks_late: true };
// @ts-expect-error TS_CELERY takes ts-celery's settings, checked by name
conf.TS_CELERY = { worker_concurency: 100 };
export const viaDefault: typeof createWorker = celery.createWorker;
export const done: Promise<void[]> = worker.whenCurrentJobsFinished();
