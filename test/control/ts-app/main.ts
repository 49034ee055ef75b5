/**
 * The app the remote-control and events tests run on `ts-celery worker -A
 * test/control/ts-app`, in the control vhost with Redis DB 15. The task
 * names match test/control/py/ctlapp.py, so the same client code drives a
 * Python and a TypeScript worker.
 *
 * Env: CTL_BROKER, CTL_BACKEND, CTL_QUEUE (task_default_queue), CTL_EVENTS=1
 * (worker_send_task_events), CTL_SENT_EVENT=1 (task_send_sent_event).
 */
import { Celery } from 'ts-celery';

export const app = new Celery('ctlapp', {
  broker_url: process.env.CTL_BROKER ?? 'amqp://guest:guest@127.0.0.1:5672/ts-celery-control',
  result_backend: process.env.CTL_BACKEND ?? 'redis://127.0.0.1:6379/15',
  task_default_queue: process.env.CTL_QUEUE ?? 'celery',
  worker_send_task_events: process.env.CTL_EVENTS === '1',
  task_send_sent_event: process.env.CTL_SENT_EVENT === '1',
});

export const add = app.task({ name: 'ctl.add' }, (x: number, y: number) => x + y);

/** Sleeps `seconds`, stopping early when its signal aborts (revoke with terminate, soft time limit). */
export const sleep = app.task({ name: 'ctl.sleep', bind: true }, async (self, seconds: number) => {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    self.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(self.signal.reason);
    });
  });
  return seconds;
});

export const fail = app.task({ name: 'ctl.fail', params: ['msg?'] }, (msg?: string): never => {
  throw new RangeError(msg ?? 'boom');
});

export const retryOnce = app.task({ name: 'ctl.retry_once', bind: true }, async (self) => {
  if (self.request.retries < 1) return self.retry({ countdown: 0.5, exc: new Error('transient') });
  return 'retried';
});

export const limited = app.task({ name: 'ctl.limited', rateLimit: '100/m' }, () => 'limited');
