/**
 * Tasks for test/interop/task-predicates.test.ts: Reject, self.request.properties,
 * self.retry({ args }) / ({ kwargs }), expiry while waiting for a slot, and the
 * results of what a task sent. Env: PREDAPP_QUEUE (task_default_queue).
 * RabbitMQ vhost `ts-celery-test`, Redis DB 9, as every integration test.
 */
import { Celery, Reject, group } from 'ts-celery';

export const app = new Celery('predapp', {
  broker_url: 'amqp://guest:guest@127.0.0.1:5672/ts-celery-test',
  result_backend: 'redis://127.0.0.1:6379/9',
  task_default_queue: process.env.PREDAPP_QUEUE ?? 'celery',
});

/** acks_late, first delivery: Reject(requeue=True); the redelivery succeeds. */
app.task({ name: 'pred.reject_then_succeed', bind: true, acksLate: true }, (self) => {
  if (!self.request.deliveryInfo.redelivered) throw new Reject('try again', true);
  return 'second-pass';
});
/** Reject(requeue=False): FAILURE with the Reject, the message dropped (acks_late or not). */
app.task({ name: 'pred.reject_drop' }, () => {
  throw new Reject('no', false);
});
app.task({ name: 'pred.reject_drop_late', acksLate: true }, () => {
  throw new Reject('dropped', false);
});
/** Early ack: the message was acked as the task started, so Reject(requeue=True) loses it, as in Celery. */
app.task({ name: 'pred.reject_requeue_early' }, () => {
  throw new Reject('too late to requeue', true);
});
app.task({ name: 'pred.properties', bind: true }, (self) => self.request.properties);
app.task({ name: 'pred.retry_with_args_after_kwargs', bind: true, maxRetries: 1, params: ['foo', 'bar', 'label?'] }, (self, foo: number, bar: number, label: unknown = null) => {
  if (!self.request.retries) throw self.retry({ args: [foo + 1, bar + 1], countdown: 0 });
  return { foo, bar, label, retries: self.request.retries };
});
app.task({ name: 'pred.retry_with_kwargs_after_args', bind: true, maxRetries: 1 }, (self, foo: number, bar: number) => {
  if (!self.request.retries) throw self.retry({ kwargs: { foo: foo + 1 }, countdown: 0 });
  return { foo, bar, retries: self.request.retries };
});
app.task({ name: 'pred.sleep' }, (seconds: number) => new Promise((r) => setTimeout(() => r(seconds), seconds * 1000)));
app.task({ name: 'pred.add' }, (x: number, y: number) => x + y);
/** Sends a group of tasks due in an hour (held or parked): its children for the client to revoke. */
app.task({ name: 'pred.spawn_later' }, async () => {
  const add = app.signature('pred.add');
  await group(add.clone([1, 1]), add.clone([2, 2])).applyAsync([], {}, { countdown: 3600 });
  return 'sent';
});
/** Retries due in 2 s but expiring in 1 s (Celery's `retry(expires=...)`): the retried run is REVOKED. */
app.task({ name: 'pred.retry_expires', bind: true, maxRetries: 1 }, (self) => {
  if (!self.request.retries) throw self.retry({ countdown: 2, expires: 1 });
  return 'ran';
});
