/**
 * The remote-control and events suites run in a vhost of their own
 * (`ts-celery-control`, created by scripts/services.sh) and Redis DB 15:
 * pidbox broadcasts and celeryev events are fanout/topic traffic that would
 * otherwise reach the workers of every other suite running at the same time.
 */
import amqp from 'amqplib';

export const CONTROL_VHOST = 'ts-celery-control';
export const CONTROL_AMQP_URL = `amqp://guest:guest@127.0.0.1:5672/${CONTROL_VHOST}`;
export const CONTROL_REDIS_DB = 15;
export const CONTROL_REDIS_URL = `redis://127.0.0.1:6379/${CONTROL_REDIS_DB}`;

/** Deletes queues in the control vhost (missing ones are ignored). */
export async function deleteControlQueues(...names: string[]): Promise<void> {
  if (names.length === 0) return;
  const conn = await amqp.connect(CONTROL_AMQP_URL);
  try {
    const ch = await conn.createChannel();
    for (const name of names) await ch.deleteQueue(name);
    await ch.close();
  } finally {
    await conn.close();
  }
}
