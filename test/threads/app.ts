/** The app the threads-pool tests load in every pool thread. */
import { isMainThread, threadId } from 'node:worker_threads';
import { Celery, getLogger } from 'ts-celery';

/**
 * In-process tests use it on the embedded broker; the CLI tests run it with CELERY_BROKER_URL
 * and CELERY_RESULT_BACKEND set (Celery's environment overrides), and THREADS_HEARTBEAT
 * (broker_heartbeat, seconds).
 */
export const app = new Celery('threads-unit', {
  broker_url: 'memory://',
  ...(process.env.THREADS_HEARTBEAT ? { broker_heartbeat: Number(process.env.THREADS_HEARTBEAT) } : {}),
});
const log = getLogger('tasks.threads');

class Flaky extends Error {}

function spin(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

export const add = app.task({ name: 'add' }, (x: number, y: number) => x + y);
app.task({ name: 'where' }, () => ({ isMainThread, threadId }));
app.task({ name: 'spin' }, (ms: number) => {
  spin(ms);
  return threadId;
});
app.task({ name: 'forever', timeLimit: 1 }, () => {
  for (;;);
});
app.task({ name: 'fail' }, (msg: string) => {
  throw new RangeError(msg);
});
app.task({ name: 'throwsText' }, () => {
  throw 'plain text';
});
app.task({ name: 'flaky', bind: true }, (self) => {
  if (self.request.retries < 2) throw self.retry({ countdown: 0.01, exc: new Flaky(`attempt ${self.request.retries}`) });
  return `ok after ${self.request.retries} retries`;
});
app.task({ name: 'awaitRetry', bind: true, maxRetries: 1 }, async (self) => {
  if (self.request.retries === 0) await self.retry({ countdown: 0.01 });
  return self.request.retries;
});
app.task({ name: 'autoretry', bind: true, autoretryFor: [Flaky], maxRetries: 2, defaultRetryDelay: 0.01 }, (self) => {
  throw new Flaky(`try ${self.request.retries}`);
});
app.task({ name: 'soft', bind: true, softTimeLimit: 0.2 }, async (self) => {
  await new Promise((resolve) => self.signal.addEventListener('abort', resolve));
  return String((self.signal.reason as Error).name);
});
app.task({ name: 'parent', bind: true }, async (self) => {
  const child = await add.delay(1, 2);
  return { me: self.request.id, child: child.id, value: await child.get({ timeout: 5000 }) };
});
app.task({ name: 'crash' }, () => {
  setImmediate(() => {
    throw new Error('crashed outside the task');
  });
  return new Promise(() => undefined);
});
app.task({ name: 'exit' }, () => process.exit(3));
app.task({ name: 'hog' }, () => {
  const keep: number[][] = [];
  for (;;) keep.push(new Array(100_000).fill(1));
});
const leak: unknown[] = [];
app.task({ name: 'leak' }, (kib: number) => {
  leak.push(new Array(kib * 128).fill(1.5));
  return threadId;
});
app.task({ name: 'logs' }, (text: string) => {
  log.warning(text);
  return text;
});
app.task({ name: 'dated' }, () => ({ when: new Date(0), gone: undefined }));
/** A thenable that is not a Promise: awaited like one (the thread answers it in a later turn). */
app.task({ name: 'thenable' }, (x: number) => ({ then: (resolve: (v: number) => void) => setTimeout(() => resolve(x * 2), 1) }));
/** A thenable whose then() throws: the task fails with that error, the thread lives on. */
app.task({ name: 'badThenable' }, () => ({
  then: () => {
    throw new TypeError('then() broke');
  },
}));
/** Neither JSON (a cycle) nor a structured clone (a function) can carry it. */
app.task({ name: 'unclonable' }, () => {
  const value: Record<string, unknown> = { fn: () => 1 };
  value.self = value;
  return value;
});
/** [start, end, thread] of a busy loop: two of them overlapping in time ran in parallel. */
app.task({ name: 'span' }, (ms: number) => {
  const start = Date.now();
  spin(ms);
  return [start, Date.now(), threadId];
});
/** Each kills its thread on the first delivery and returns on a redelivery (different ack settings). */
const dieOnce = (self: { request: { deliveryInfo: { redelivered: boolean } } }): string => {
  if (!self.request.deliveryInfo.redelivered) process.exit(1);
  return 'second run';
};
app.task({ name: 'dieEarly', bind: true }, dieOnce);
app.task({ name: 'dieLate', bind: true, acksLate: true }, dieOnce);
app.task({ name: 'dieLateRequeue', bind: true, acksLate: true, rejectOnWorkerLost: true }, dieOnce);
/** Waits without using the CPU (an I/O-bound task). */
app.task({ name: 'nap' }, async (ms: number) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return Date.now();
});
/** Leaves a rejected promise nobody awaits: logged, as in the async pool; the thread lives on. */
app.task({ name: 'stray' }, () => {
  void Promise.reject(new Error('nobody awaited me'));
  return threadId;
});
/** self.replace() from a thread: the replacement (published by the main thread) stores this id's result. */
app.task({ name: 'replaced', bind: true }, (self, x: number) => self.replace(add.s(x, 100)));
