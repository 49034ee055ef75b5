/**
 * The TypeScript counterpart of py/pytasks.py, for interop tests: a worker
 * started with `ts-celery worker -A test/interop/ts-app` runs these, and
 * Python clients call them by name.
 *
 * Env: TSAPP_BROKER, TSAPP_BACKEND (defaults: the test vhost and Redis DB 9; rpc:// works too), TSAPP_REDIS,
 * TSAPP_QUEUE (task_default_queue), TSAPP_ACKS_LATE=1, TSAPP_TIMEZONE (timezone),
 * TSAPP_RESULT_KEYPREFIX (result_backend_transport_options.global_keyprefix),
 * TSAPP_RETRY_ON_STARTUP=0|1, TSAPP_MAX_RETRIES (broker_connection_max_retries),
 * TSAPP_TRANSPORT_OPTIONS (JSON broker_transport_options).
 */
import { Redis } from 'ioredis';
import { Celery, type CeleryConfig } from 'ts-celery';

const optional: CeleryConfig = {};
if (process.env.TSAPP_TIMEZONE) optional.timezone = process.env.TSAPP_TIMEZONE;
if (process.env.TSAPP_RESULT_KEYPREFIX) optional.result_backend_transport_options = { global_keyprefix: process.env.TSAPP_RESULT_KEYPREFIX };
if (process.env.TSAPP_RETRY_ON_STARTUP) optional.broker_connection_retry_on_startup = process.env.TSAPP_RETRY_ON_STARTUP === '1';
if (process.env.TSAPP_MAX_RETRIES) optional.broker_connection_max_retries = Number(process.env.TSAPP_MAX_RETRIES);

export const app = new Celery('tsapp', {
  broker_url: process.env.TSAPP_BROKER ?? 'amqp://guest:guest@127.0.0.1:5672/ts-celery-test',
  result_backend: process.env.TSAPP_BACKEND ?? 'redis://127.0.0.1:6379/9',
  task_default_queue: process.env.TSAPP_QUEUE ?? 'celery',
  task_acks_late: process.env.TSAPP_ACKS_LATE === '1',
  task_track_started: process.env.TSAPP_TRACK_STARTED === '1',
  ...optional,
  broker_transport_options: process.env.TSAPP_TRANSPORT_OPTIONS ? (JSON.parse(process.env.TSAPP_TRANSPORT_OPTIONS) as Record<string, unknown>) : {},
});

/** Thrown by ts.fail_custom: Python's get() raises an exception of this name. */
export class SmsProviderError extends Error {
  override name = 'SmsProviderError';
}

let redis: Redis | null = null;
// Counting lists live in Redis even when results go over rpc://.
const store = (): Redis => (redis ??= new Redis(process.env.TSAPP_REDIS ?? 'redis://127.0.0.1:6379/9'));

export const add = app.task({ name: 'ts.add' }, (x: number, y: number) => x + y);
export const echo = app.task({ name: 'ts.echo', params: ['...args'] }, (...args: unknown[]) => ({ args }));
export const fail = app.task({ name: 'ts.fail' }, (msg: string) => {
  throw new Error(msg);
});
export const failType = app.task({ name: 'ts.fail_type' }, (msg: string) => {
  throw new TypeError(msg);
});
export const failCustom = app.task({ name: 'ts.fail_custom' }, (msg: string) => {
  throw new SmsProviderError(msg);
});
export const retryTwice = app.task({ name: 'ts.retry_twice', bind: true }, async (self) => {
  if (self.request.retries < 2) return self.retry({ countdown: 0.5 });
  return self.request.retries;
});
export const retryForever = app.task({ name: 'ts.retry_forever', bind: true, maxRetries: 2 }, async (self) =>
  self.retry({ exc: new SmsProviderError('still failing'), countdown: 0.3 }),
);
/** Celery's idiom `raise self.retry(...)`, written `throw self.retry(...)` (issue #9). */
export const retryThrow = app.task({ name: 'ts.retry_throw', bind: true }, async (self) => {
  if (self.request.retries < 2) throw self.retry({ countdown: 0.3 });
  return self.request.retries;
});
/** `await self.retry(...)` ends the run too. */
export const retryAwait = app.task({ name: 'ts.retry_await', bind: true }, async (self) => {
  if (self.request.retries < 2) await self.retry({ countdown: 0.3 });
  return self.request.retries;
});
/** A plain (not async) function returning `self.retry(...)`. */
export const retryReturnSync = app.task({ name: 'ts.retry_return_sync', bind: true }, (self) => {
  if (self.request.retries < 2) return self.retry({ countdown: 0.3 });
  return self.request.retries;
});
/** `throw self.retry({ exc })` past maxRetries: the task fails with exc. */
export const retryThrowExhausted = app.task({ name: 'ts.retry_throw_exhausted', bind: true, maxRetries: 1 }, (self) => {
  throw self.retry({ exc: new SmsProviderError('gave up'), countdown: 0.3 });
});
/** acks_late: a retry RabbitMQ cannot route is never confirmed, so the original is requeued, not acked. */
export const retryUnroutable = app.task({ name: 'ts.retry_unroutable', bind: true, acksLate: true }, (self) => {
  if (!self.request.deliveryInfo.redelivered) throw self.retry({ countdown: 0, queue: 'ts-celery-no-such-queue' });
  return 'redelivered';
});
/** Throws values that are not Errors. */
export const throwValue = app.task({ name: 'ts.throw_value' }, (kind: string) => {
  if (kind === 'string') throw 'plain text failure'; // eslint-disable-line no-throw-literal
  if (kind === 'object') throw { code: 42, reason: 'quota' }; // eslint-disable-line no-throw-literal
  if (kind === 'map') throw new Map([['code', 42]]); // eslint-disable-line no-throw-literal
  throw Promise.resolve(1); // eslint-disable-line no-throw-literal
});
/** Returns a thenable that is not a Promise instance (e.g. a query builder, a Bluebird promise). */
export const thenable = app.task({ name: 'ts.thenable' }, (value: number) => ({
  then(resolve: (v: number) => void) {
    setTimeout(() => resolve(value * 2), 10);
  },
}));
/** Python's `def f(*args, **kwargs)`: any positional and keyword arguments. */
export const varArgs = app.task({ name: 'ts.var_args', params: ['*args', '**kwargs'] }, (args: unknown[], kwargs: Record<string, unknown>) => ({ args, kwargs }));
/** Python's `def f(self, a, *args, **kwargs)`. */
export const mixedVarArgs = app.task(
  { name: 'ts.mixed_var_args', bind: true, params: ['a', '*args', '**kwargs'] },
  (self, a: unknown, args: unknown[], kwargs: Record<string, unknown>) => ({ a, args, kwargs, task: self.name }),
);
export const sleepy = app.task({ name: 'ts.sleepy' }, async (seconds: number) => {
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return seconds;
});
export const now = app.task({ name: 'ts.now' }, () => Date.now() / 1000);
export const record = app.task({ name: 'ts.record' }, async (tag: string) => {
  await store().rpush(`pytasks:record:${tag.split(':')[0]}`, tag);
  return tag;
});
export const requestInfo = app.task({ name: 'ts.request_info', bind: true }, (self) => ({
  id: self.request.id,
  retries: self.request.retries,
  eta: self.request.eta?.toISOString() ?? null,
  parent_id: self.request.parentId,
  root_id: self.request.rootId,
  hostname: self.request.hostname,
  delivery_info: self.request.deliveryInfo,
}));
/** A stamped task's stamps (`self.request.stamps`), as py.stamps returns them. */
export const stamps = app.task({ name: 'ts.stamps', bind: true, params: ['tag?'] }, (self, tag: unknown = null) => ({
  tag,
  stamped_headers: [...self.request.stampedHeaders].sort(),
  stamps: self.request.stamps,
}));
export const ignored = app.task({ name: 'ts.ignored', ignoreResult: true }, () => 'not stored');

/** Also defined in py/pytasks.py: the first run retries onto `targetQueue` (the other language's worker). */
export const hop = app.task({ name: 'shared.hop', bind: true }, async (self, targetQueue: string) => {
  if (self.request.retries === 0) return self.retry({ countdown: 0.5, queue: targetQueue });
  return { worker: 'ts', retries: self.request.retries, parent_id: self.request.parentId };
});

/** Same name and effect as pytasks' shared.record: who ran each task, for exactly-once counts. */
export const sharedRecord = app.task({ name: 'shared.record' }, async (tag: string) => {
  await store().rpush(`pytasks:record:${tag.split(':')[0]}`, `ts:${tag}`);
  return tag;
});

/** Counts tasks running at once inside this worker; returns the highest count it saw. */
let running = 0;
let peak = 0;
export const concurrencyProbe = app.task({ name: 'ts.concurrency_probe' }, async (ms: number) => {
  running++;
  peak = Math.max(peak, running);
  await new Promise((r) => setTimeout(r, ms));
  running--;
  return peak;
});

/** Returns the message's non-standard headers as the worker decoded them. */
export const headers = app.task({ name: 'ts.headers', bind: true }, (self) => self.request.headers);

// --- canvas (test/interop/canvas.test.ts) --------------------------------
export const tsum = app.task({ name: 'ts.tsum' }, (nums: number[]) => nums.reduce((a, b) => a + b, 0));

/** Also defined in py/pytasks.py: records who ran it, returns x * x. */
export const sharedSquare = app.task({ name: 'shared.square' }, async (tag: string, x: number) => {
  await store().rpush(`pytasks:record:${tag.split(':')[0]}`, `ts:${x}`);
  await new Promise((r) => setTimeout(r, 20));
  return x * x;
});

/** Also defined in py/pytasks.py: a chord body that records that it ran. */
export const sharedCollect = app.task({ name: 'shared.collect' }, async (values: unknown[], tag: string) => {
  await store().rpush(`pytasks:record:${tag.split(':')[0]}`, 'ts:body');
  return { values, worker: 'ts' };
});

/** Replaces itself with a task defined only in Python, on the queue given. */
export const replaceWithPy = app.task({ name: 'ts.replace_with_py', bind: true }, (self, x: number, y: number, queue: string) =>
  self.replace(app.signature('py.add', [x, y], {}, { queue })),
);

/** Same name and effect as pytasks' shared.slow: notes `ts|<tag>|<pid>` when it starts and when it ends. */
export const slow = app.task({ name: 'shared.slow' }, async (tag: string, seconds: number) => {
  const run = tag.split(':')[0];
  await store().rpush(`pytasks:started:${run}`, `ts|${tag}|${process.pid}`);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  await store().rpush(`pytasks:done:${run}`, `ts|${tag}|${process.pid}`);
  return tag;
});
