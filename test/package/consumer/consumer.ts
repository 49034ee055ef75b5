// Type-checked with the consumer's own strict options (tsconfig.nodenext.json, tsconfig.bundler.json),
// against the declarations in the packed package, with skipLibCheck off.
import { AsyncResult, Celery, CeleryError, TaskError, Worker, signature, type ApplyOptions } from 'ts-celery';

export const app = new Celery('consumer', { broker_url: 'memory://' });
export const add = app.task({ name: 'consumer.add', maxRetries: 3 }, (x: number, y: number): number => x + y);
const later: ApplyOptions = { countdown: 1, link: signature('consumer.log') };

export async function run(): Promise<number> {
  const result: AsyncResult<number> = await add.delay(2, 3);
  // @ts-expect-error delay() takes the task function's parameter types: '2' is not a number
  await add.delay('2', 3);
  await add.applyAsync([2, 3], {}, later);
  try {
    return await result.get({ timeout: 1000 });
  } catch (err) {
    if (err instanceof TaskError) return err.excType.length;
    if (err instanceof CeleryError) return -1;
    throw err;
  }
}

export const worker = new Worker(app, { hostname: 'consumer@localhost', concurrency: 10 });
