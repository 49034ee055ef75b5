/**
 * The TypeScript app of the quorum-queue tests (test/cluster/): the
 * counterpart of py/qapp.py, declaring the same queues the same way
 * (`x-queue-type: quorum` behind a topic exchange of the same name).
 *
 * Env: QAPP_BROKER, QAPP_BACKEND, QAPP_QUEUES (comma-separated; the first is
 * task_default_queue), QAPP_DELIVERY_LIMIT (x-delivery-limit, optional).
 */
import { Celery, type CeleryConfig } from 'ts-celery';

const queues = (process.env.QAPP_QUEUES ?? 'qapp').split(',').filter(Boolean);
const limit = process.env.QAPP_DELIVERY_LIMIT;

export const config: CeleryConfig = {
  broker_url: process.env.QAPP_BROKER ?? 'amqp://guest:guest@127.0.0.1:5672/ts-celery-cluster',
  result_backend: process.env.QAPP_BACKEND ?? 'redis://127.0.0.1:6379/8',
  task_queues: queues.map((name) => ({
    name,
    exchange_type: 'topic' as const,
    queue_arguments: { 'x-queue-type': 'quorum', ...(limit ? { 'x-delivery-limit': Number(limit) } : {}) },
  })),
  task_default_queue: queues[0]!,
  task_default_exchange_type: 'topic',
};

export const app = new Celery('qapp', config);

export const add = app.task({ name: 'tsq.add' }, (x: number, y: number) => x + y);

/** When it ran, and how it arrived (delayed messages come from celery_delayed_*). */
export const now = app.task({ name: 'tsq.now', bind: true }, (self) => ({
  at: Date.now() / 1000,
  exchange: self.request.deliveryInfo.exchange,
  routing_key: self.request.deliveryInfo.routingKey,
  eta: self.request.eta?.toISOString() ?? null,
  retries: self.request.retries,
}));

/** Retries once with countdown 2, then reports both runs' times and how the second arrived. */
export const retryOnce = app.task({ name: 'tsq.retry_once', bind: true }, async (self, firstAt: number | null = null) => {
  if (self.request.retries === 0) throw self.retry({ countdown: 2, args: [Date.now() / 1000] });
  return { first_at: firstAt, at: Date.now() / 1000, exchange: self.request.deliveryInfo.exchange, routing_key: self.request.deliveryInfo.routingKey };
});
