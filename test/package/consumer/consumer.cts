// A CommonJS TypeScript consumer: require() of the ESM package (Node >= 20.19), typed.
import tsCelery = require('ts-celery');

export const app = new tsCelery.Celery('consumer-cjs');
export const echo = app.task({ name: 'consumer.echo' }, (text: string): string => text);
// @ts-expect-error echo takes one string
void echo.delay(42);

// celery-node's API, as a CommonJS celery-node project imports it after the one-line change.
import celeryNode = require('ts-celery/celery-node');

export const cnClient = celeryNode.createClient('amqp://', 'amqp://');
export const cnResult = cnClient.createTask('tasks.add').delay(1, 2);
