/**
 * Real services used by the integration/interop tests. They are started by
 * `scripts/services.sh ensure` (npm's `pretest`): RabbitMQ on 127.0.0.1:5672
 * (node rabbit@localhost, vhost `ts-celery-test`) and Redis on 127.0.0.1:6379.
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { runCaptured } from './run-captured.js';

export const RABBIT_VHOST = 'ts-celery-test';
/** The vhost is the URL path. */
export const AMQP_URL = `amqp://guest:guest@127.0.0.1:5672/${RABBIT_VHOST}`;
export const REDIS_DB = 9;
export const REDIS_URL = `redis://127.0.0.1:6379/${REDIS_DB}`;
/** Node name written to /etc/rabbitmq/rabbitmq-env.conf by services.sh. */
export const RABBIT_NODE = 'rabbit@localhost';

let nameCounter = 0;

/**
 * A short name, unique per call (pid + counter + random), made only of
 * `[A-Za-z0-9_.-]`: safe for queue, exchange and worker node names.
 * Example: `uniqueName('harness')` -> `harness-1k3f-2-9c41d2`.
 */
export function uniqueName(prefix: string): string {
  const safe = prefix.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^amq\./, 'x-amq.');
  nameCounter += 1;
  return `${safe}-${process.pid.toString(36)}-${nameCounter.toString(36)}-${randomBytes(3).toString('hex')}`;
}

/**
 * Run `rabbitmqctl ARGS` (the Debian wrapper, which switches to the rabbitmq
 * user) and resolve with its stdout; reject with stderr on non-zero exit.
 * Each call costs ~0.4 s.
 */
export async function rabbitmqctl(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const run = await runCaptured('/usr/sbin/rabbitmqctl', args, {
    env: { ...process.env, RABBITMQ_NODENAME: RABBIT_NODE },
    timeoutMs: opts.timeoutMs ?? 30_000,
    what: `rabbitmqctl ${args.join(' ')}`,
  });
  return run.stdout;
}

export interface QueueStats {
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
}

interface ListQueuesRow extends QueueStats {
  name: string;
}

/**
 * Counters of one queue, from `rabbitmqctl list_queues`; `null` when the
 * queue does not exist. Counters lag the broker by up to a few hundred ms.
 */
export async function listQueue(vhost: string, name: string): Promise<QueueStats | null> {
  const out = await rabbitmqctl([
    '-q', 'list_queues', '-p', vhost,
    'name', 'messages_ready', 'messages_unacknowledged', 'consumers',
    '--formatter', 'json',
  ]);
  const rows = JSON.parse(out) as ListQueuesRow[];
  const row = rows.find((r) => r.name === name);
  if (!row) return null;
  return {
    messages_ready: Number(row.messages_ready),
    messages_unacknowledged: Number(row.messages_unacknowledged),
    consumers: Number(row.consumers),
  };
}

/** Delete queues in the test vhost (missing ones are ignored). */
export async function deleteQueues(...names: string[]): Promise<void> {
  if (names.length === 0) return;
  const conn = await amqp.connect(AMQP_URL);
  try {
    const ch = await conn.createChannel();
    for (const name of names) {
      // queue.delete of a missing queue is a no-op on RabbitMQ 3.x
      await ch.deleteQueue(name);
    }
    await ch.close();
  } finally {
    await conn.close();
  }
}

/** The Redis broker's tests: Redis DB 10 as the broker, DB 11 for results (and counting lists). */
export const REDIS_BROKER_URL = 'redis://127.0.0.1:6379/10';
export const REDIS_BROKER_RESULTS_URL = 'redis://127.0.0.1:6379/11';
