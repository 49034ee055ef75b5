// A CommonJS TypeScript consumer: require() of the ESM package (Node >= 20.19), typed.
import tsCelery = require('ts-celery');

export const app = new tsCelery.Celery('consumer-cjs');
export const echo = app.task({ name: 'consumer.echo' }, (text: string): string => text);
// @ts-expect-error echo takes one string
void echo.delay(42);
