// The same app in TypeScript: `npx ts-celery worker -A tasks.ts`, compiled by tsx on the fly.
import { Celery, type CeleryConfig } from 'ts-celery';

const settings: CeleryConfig = await Promise.resolve({
  broker_url: process.env['CONSUMER_BROKER'] ?? '',
  result_backend: process.env['CONSUMER_BACKEND'] ?? '',
  task_default_queue: process.env['CONSUMER_QUEUE'] ?? 'celery',
});

export const app = new Celery('consumer-ts', settings);

export const multiply = app.task({ name: 'consumer.multiply' }, (x: number, y: number): number => x * y);
