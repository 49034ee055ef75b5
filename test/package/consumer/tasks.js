// A plain-JavaScript app, as a user writes one: "type": "module", top-level await,
// `npx ts-celery worker -A tasks.js`. Settings come from the environment the test sets.
import { Celery } from 'ts-celery';

const settings = await Promise.resolve({
  broker_url: process.env.CONSUMER_BROKER,
  result_backend: process.env.CONSUMER_BACKEND,
  task_default_queue: process.env.CONSUMER_QUEUE,
});

export const app = new Celery('consumer', settings);

export const add = app.task({ name: 'consumer.add' }, (x, y) => x + y);
