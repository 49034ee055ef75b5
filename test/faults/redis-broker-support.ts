/**
 * Shared pieces of the Redis-broker fault tests. Each file starts its own
 * redis-server as the broker (test/helpers/redis-node.ts: a free port, a
 * password, optionally an fsynced append-only file), so it needs no lock and
 * never touches the shared RabbitMQ or Redis; tasks count themselves in the
 * shared Redis DB 11 (never faulted).
 *
 * Workers: `ts-celery worker -A test/interop/ts-app` and Python's
 * `celery -A pytasks worker`, both running `shared.slow(tag, seconds)`, which
 * appends `<lang>|<tag>|<pid>` to `pytasks:started:<run>` when it starts and
 * to `pytasks:done:<run>` when it ends (`<run>` = the tag before its first ':').
 */
import { Redis } from 'ioredis';
import { Celery } from '../../src/index.js';
import { startPythonWorker, type PythonKind, type PythonWorker } from '../helpers/python.js';
import { REDIS_BROKER_RESULTS_URL } from '../helpers/services.js';
import { startTsWorker, type TsWorker } from '../helpers/ts-worker.js';
import type { Entry } from './support.js';

/** Fast restores for tests: kombu's sweep every second instead of every 100 s. */
export function transportOptions(visibilityTimeout: number): Record<string, unknown> {
  return { visibility_timeout: visibilityTimeout, unacked_restore_interval: 1, unacked_restore_throttle: 1 };
}

/** A task run as the counting lists record it. */
export interface Run extends Entry {
  lang: 'ts' | 'py';
}

let counts: Redis | null = null;
function countStore(): Redis {
  counts ??= new Redis(REDIS_BROKER_RESULTS_URL);
  return counts;
}

/** `pytasks:started:<run>` or `pytasks:done:<run>`, parsed. */
export async function runs(run: string, list: 'started' | 'done'): Promise<Run[]> {
  const raw = await countStore().lrange(`pytasks:${list}:${run}`, 0, -1);
  return raw.map((line) => {
    const [lang = 'ts', tag = '', pid = '0'] = line.split('|');
    return { lang: lang as Run['lang'], tag, pid: Number(pid), at: 0 };
  });
}

export async function dropRuns(...names: string[]): Promise<void> {
  for (const run of names) await countStore().del(`pytasks:started:${run}`, `pytasks:done:${run}`);
}

export async function closeCounts(): Promise<void> {
  if (counts) await counts.quit().catch(() => undefined);
  counts = null;
}

export interface BrokerWorkerOptions {
  broker: string;
  queues: string[];
  concurrency: number;
  acksLate?: boolean;
  visibilityTimeout: number;
}

/** `ts-celery worker` on the Redis broker. */
export function startTsBrokerWorker(o: BrokerWorkerOptions): Promise<TsWorker> {
  return startTsWorker({
    queues: o.queues,
    concurrency: o.concurrency,
    env: {
      TSAPP_BROKER: o.broker,
      TSAPP_BACKEND: REDIS_BROKER_RESULTS_URL,
      TSAPP_REDIS: REDIS_BROKER_RESULTS_URL,
      TSAPP_ACKS_LATE: o.acksLate ? '1' : '0',
      TSAPP_TRANSPORT_OPTIONS: JSON.stringify(transportOptions(o.visibilityTimeout)),
    },
  });
}

/** A Python Celery worker (threads pool) on the Redis broker. */
export function startPyBrokerWorker(o: BrokerWorkerOptions & { python?: PythonKind }): Promise<PythonWorker> {
  return startPythonWorker({
    python: o.python ?? 'pypi',
    queues: o.queues,
    concurrency: o.concurrency,
    pool: 'threads',
    env: {
      PYTASKS_BROKER: o.broker,
      PYTASKS_BACKEND: REDIS_BROKER_RESULTS_URL,
      PYTASKS_ACKS_LATE: o.acksLate ? '1' : '0',
      PYTASKS_TRANSPORT_OPTIONS: JSON.stringify(transportOptions(o.visibilityTimeout)),
    },
  });
}

/** A producer app on the Redis broker (no result backend: the counting lists say what ran). */
export function brokerProducer(broker: string, queue: string): Celery {
  return new Celery('redis-faults', { broker_url: broker, task_default_queue: queue });
}

/** SIGKILL of a Python worker's whole process group (the main process and its pool). */
export function killPython(worker: PythonWorker): void {
  try {
    process.kill(-worker.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
