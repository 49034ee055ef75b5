/**
 * Shared pieces of the quorum-queue tests: the vhost `ts-celery-cluster` on
 * the shared RabbitMQ (created by scripts/services.sh) and Redis DB 8, the
 * Python app py/qapp.py (worker and client) and the TypeScript app ts-app/.
 */
import { join } from 'node:path';
import amqp from 'amqplib';
import { PYTHON, REPO_ROOT, startPythonWorker, type PythonWorker } from '../helpers/python.js';
import { rabbitmqctl } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';
import { lastJsonLine, runCaptured } from '../helpers/run-captured.js';

export const VHOST = 'ts-celery-cluster';
export const BROKER_URL = `amqp://guest:guest@127.0.0.1:5672/${VHOST}`;
export const BACKEND_URL = 'redis://127.0.0.1:6379/8';
export const QAPP_DIR = join(REPO_ROOT, 'test', 'cluster', 'py');
export const TS_APP = 'test/cluster/ts-app/main.ts';

/** The QAPP_* environment both apps read. */
export function qappEnv(queues: string[], extra: Record<string, string> = {}): Record<string, string> {
  return { QAPP_BROKER: BROKER_URL, QAPP_BACKEND: BACKEND_URL, QAPP_QUEUES: queues.join(','), ...extra };
}

/** A Celery 5.7 worker on qapp.py consuming `queue`. */
export function startQappWorker(queue: string, env: Record<string, string>, concurrency = 2): Promise<PythonWorker> {
  return startPythonWorker({
    queues: [queue], concurrency, pool: 'threads', appModule: 'qapp', appDir: QAPP_DIR,
    // PYTASKS_BROKER: where the helper sends the ping that wakes a stopping 5.7 worker.
    env: { ...env, PYTASKS_BROKER: env.QAPP_BROKER ?? BROKER_URL },
  });
}

/** `ts-celery worker -A test/cluster/ts-app/main.ts -Q queue`. */
export function startTsQWorker(queue: string, env: Record<string, string>, concurrency = 4): Promise<TsWorker> {
  return startTsWorker({ app: TS_APP, queues: [queue], concurrency, env });
}

/** Runs `qapp.py ARGS` with Celery 5.7; resolves with its last JSON line. */
export async function runQapp<T = Record<string, unknown>>(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<T> {
  const what = `qapp.py ${args.join(' ')}`;
  const run = await runCaptured(PYTHON.pypi, [join(QAPP_DIR, 'qapp.py'), ...args], {
    cwd: QAPP_DIR,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1', PYTHONUNBUFFERED: '1', PYTHONPATH: QAPP_DIR, ...env },
    timeoutMs,
    what,
  });
  return lastJsonLine<T>(run, what);
}

export interface QueueRow {
  name: string;
  type: string;
  messages_ready: number;
  messages_unacknowledged: number;
  arguments: Array<[string, string, unknown]>;
}

/** `rabbitmqctl list_queues -p ts-celery-cluster name type messages_ready messages_unacknowledged arguments`. */
export async function listQueues(vhost = VHOST): Promise<QueueRow[]> {
  const out = await rabbitmqctl(['-q', 'list_queues', '-p', vhost, 'name', 'type', 'messages_ready', 'messages_unacknowledged', 'arguments', '--formatter', 'json']);
  return JSON.parse(out) as QueueRow[];
}

/** Consumers of `queue`: their prefetch (per-consumer QoS shows here; channel-global QoS shows 0). */
export async function consumersOf(queue: string, vhost = VHOST): Promise<Array<{ prefetch_count: number; ack_required: boolean }>> {
  const out = await rabbitmqctl(['-q', 'list_consumers', '-p', vhost, 'queue_name', 'ack_required', 'prefetch_count', '--formatter', 'json']);
  return (JSON.parse(out) as Array<{ queue_name: string; prefetch_count: number; ack_required: boolean }>)
    .filter((c) => c.queue_name === queue)
    .map((c) => ({ ack_required: c.ack_required, prefetch_count: c.prefetch_count }));
}

/** Messages waiting in the celery_delayed_* queues (one round trip each, over AMQP). */
export async function delayedMessages(url = BROKER_URL): Promise<number> {
  const conn = await amqp.connect(url);
  try {
    const ch = await conn.createChannel();
    let n = 0;
    for (let level = 0; level < 28; level++) n += (await ch.checkQueue(`celery_delayed_${level}`)).messageCount;
    return n;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Deletes queues in the vhost (missing ones are ignored); also their exchanges (named after them). */
export async function deleteQueuesAndExchanges(names: string[], url = BROKER_URL): Promise<void> {
  const conn = await amqp.connect(url);
  conn.on('error', () => undefined);
  try {
    for (const name of names) {
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      await ch.deleteQueue(name).catch(() => undefined);
      await ch.deleteExchange(name).catch(() => undefined);
      await ch.close().catch(() => undefined);
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** The routing key of a message that came through native delayed delivery: 28 binary digits, then the key. */
export const DELAYED_KEY = (key: string): RegExp => new RegExp(`^([01]\\.){28}${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
/** The exchange a delayed message arrives from (the last delay level it passed, or the delivery exchange). */
export const DELAY_EXCHANGE = /^celery_delayed_(\d+|delivery)$/;
