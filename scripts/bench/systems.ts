/**
 * The systems compared, and how each one's worker is started:
 *
 *   raw          plain amqplib consumer, prefetch 1000 (the ceiling)       raw-worker.ts
 *   ts           ts-celery worker -c 1000 -l warning                        bin/ts-celery.js + bench-app.ts
 *   ts-events    the same with -E: task events (3 per task, batched)  on   bin/ts-celery.js + bench-app.ts
 *   ts-js        the same worker compiled to JavaScript, on plain node (no tsx)   js-worker.mjs + bench-app.js
 *   raw-js       the raw consumer compiled to JavaScript, on plain node           raw-worker.js (see js-build.ts)
 *   ts-async2    the same with -P async -c 2     (the thread hop's baseline; CPU-bound work)
 *   ts-threads   the same with -P threads -c 2   (CPU-bound tasks in worker threads)
 *   hop-async    a Worker at -c 2, -P async, counting completions itself  hop-worker.ts
 *   hop-threads  the same with -P threads    (workload 9: the thread hop's CPU)
 *   ts-quorum    ts-celery -c 1000 on a quorum queue (x-queue-type)          bin/ts-celery.js + bench-app.ts
 *   ts-x2, ts-quorum-x2   two such worker processes on one queue (workload 10)
 *   ts-late      the same with task_acks_late: acked only after the result is stored (BENCH_ACKS_LATE=1)
 *   py-eventlet  Debian's Celery 5.2.6, -P eventlet -c 1000 (the tutorial)  pybench.py
 *   py-prefork   Debian's Celery 5.2.6, -P prefork -c 2                     pybench.py
 *   bullmq       BullMQ Worker, concurrency 1000 (Redis, not RabbitMQ)      bullmq-worker.ts
 *   ts-redis          ts-celery worker -c 1000 on the Redis broker (kombu's lists, DB 10)
 *   py-prefork-redis  Debian's Celery 5.2.6, -P prefork -c 2, on the same Redis broker
 *
 * Python workers run without mingle, gossip and heartbeats (ts-celery has
 * none of them) and at -l warning like the others: per-task INFO lines would
 * measure logging.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { BENCH_DIR, PYTHON, ROOT } from './config.js';
import { JS_DIR } from './js-build.js';
import { startProc, type Proc } from './procs.js';

export type SystemId = 'raw' | 'raw-js' | 'ts' | 'ts-js' | 'ts-events' | 'py-eventlet' | 'py-prefork' | 'bullmq' | 'ts-redis' | 'py-prefork-redis'
  | 'ts-async2' | 'ts-threads' | 'hop-async' | 'hop-threads'
  | 'ts-quorum' | 'ts-x2' | 'ts-quorum-x2' | 'ts-late';
/** Who produces for a system: Node clients (producers.ts) or Python's delay() (pybench.py). */
export type ProducerId = 'raw' | 'ts' | 'python' | 'bullmq' | 'ts-redis' | 'python-redis';

/** Where a system's messages wait: RabbitMQ, BullMQ's own Redis structures, or kombu's Redis lists. */
export type Transport = 'amqp' | 'redis' | 'kombu-redis';

export interface SystemDef {
  id: SystemId;
  /** As printed in the table. */
  label: string;
  transport: Transport;
  producer: ProducerId;
  /** The queue's `x-queue-type` (default classic). */
  queueType?: 'classic' | 'quorum';
  /** Worker processes on the queue (default 1). */
  processes?: number;
}

export const SYSTEMS: Record<SystemId, SystemDef> = {
  raw: { id: 'raw', label: 'raw amqplib (ceiling)', transport: 'amqp', producer: 'raw' },
  'raw-js': { id: 'raw-js', label: 'raw amqplib, compiled JS (plain node)', transport: 'amqp', producer: 'raw' },
  ts: { id: 'ts', label: 'ts-celery -c 1000', transport: 'amqp', producer: 'ts' },
  'ts-js': { id: 'ts-js', label: 'ts-celery -c 1000, compiled JS (plain node)', transport: 'amqp', producer: 'ts' },
  'ts-events': { id: 'ts-events', label: 'ts-celery -c 1000 -E (task events)', transport: 'amqp', producer: 'ts' },
  'ts-async2': { id: 'ts-async2', label: 'ts-celery -P async -c 2', transport: 'amqp', producer: 'ts' },
  'ts-threads': { id: 'ts-threads', label: 'ts-celery -P threads -c 2', transport: 'amqp', producer: 'ts' },
  'hop-async': { id: 'hop-async', label: 'ts-celery Worker -P async -c 2', transport: 'amqp', producer: 'ts' },
  'hop-threads': { id: 'hop-threads', label: 'ts-celery Worker -P threads -c 2', transport: 'amqp', producer: 'ts' },
  'ts-quorum': { id: 'ts-quorum', label: 'ts-celery -c 1000, quorum queue', transport: 'amqp', producer: 'ts', queueType: 'quorum' },
  'ts-x2': { id: 'ts-x2', label: 'ts-celery -c 1000 x 2 processes, classic queue', transport: 'amqp', producer: 'ts', processes: 2 },
  'ts-quorum-x2': { id: 'ts-quorum-x2', label: 'ts-celery -c 1000 x 2 processes, quorum queue', transport: 'amqp', producer: 'ts', queueType: 'quorum', processes: 2 },
  'ts-late': { id: 'ts-late', label: 'ts-celery -c 1000, acks_late', transport: 'amqp', producer: 'ts' },
  'py-eventlet': { id: 'py-eventlet', label: 'Celery 5.2.6 -P eventlet -c 1000', transport: 'amqp', producer: 'python' },
  'py-prefork': { id: 'py-prefork', label: 'Celery 5.2.6 -P prefork -c 2', transport: 'amqp', producer: 'python' },
  bullmq: { id: 'bullmq', label: 'BullMQ concurrency 1000', transport: 'redis', producer: 'bullmq' },
  'ts-redis': { id: 'ts-redis', label: 'ts-celery -c 1000, Redis broker', transport: 'kombu-redis', producer: 'ts-redis' },
  'py-prefork-redis': { id: 'py-prefork-redis', label: 'Celery 5.2.6 -P prefork -c 2, Redis broker', transport: 'kombu-redis', producer: 'python-redis' },
};

/** The transport a producer publishes over. */
export function producerTransport(producer: ProducerId): Transport {
  if (producer === 'bullmq') return 'redis';
  return producer === 'ts-redis' || producer === 'python-redis' ? 'kombu-redis' : 'amqp';
}

/** Labels of the producers (workload 3). */
export const PRODUCER_LABELS: Record<ProducerId, string> = {
  raw: 'raw publish + confirm (ceiling)',
  ts: 'ts-celery delay()',
  python: 'Celery 5.2.6 delay() (no confirms)',
  bullmq: 'BullMQ add()',
  'ts-redis': 'ts-celery delay(), Redis broker',
  'python-redis': 'Celery 5.2.6 delay(), Redis broker',
};

export interface WorkerSpec {
  queue: string;
  broker: string;
  redis: string;
  /** Result backend URL, or null for none. */
  backend: string | null;
  /** `task_default_queue_type` of ts-celery workers and producers (default classic). */
  queueType?: 'classic' | 'quorum' | undefined;
  /** Write a V8 CPU profile of the ts-celery worker into this folder. */
  profileDir?: string | undefined;
}

/** Environment for Python processes running pybench.py. */
export function pythonEnv(spec: Omit<WorkerSpec, 'profileDir'>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: BENCH_DIR,
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    ...benchEnv(spec),
  };
}

/** The BENCH_* variables every bench process reads. */
export function benchEnv(spec: Omit<WorkerSpec, 'profileDir'>): Record<string, string> {
  return { BENCH_QUEUE: spec.queue, BENCH_BROKER: spec.broker, BENCH_REDIS: spec.redis, BENCH_BACKEND: spec.backend ?? '', BENCH_QUEUE_TYPE: spec.queueType ?? 'classic' };
}

function nodeName(system: string): string {
  return `bench-${system}-${process.pid}-${randomBytes(3).toString('hex')}@%h`;
}

/** Starts a system's worker on `spec.queue` (it starts consuming on its own; see workloads.ts for readiness). */
export function startWorker(system: SystemId, spec: WorkerSpec): Proc {
  const node = process.execPath;
  const env = { ...process.env, ...benchEnv(spec) };
  switch (system) {
    case 'raw':
      return startProc(node, ['--import', 'tsx', join(BENCH_DIR, 'raw-worker.ts')], { cwd: ROOT, env });
    case 'raw-js':
      return startProc(node, [join(JS_DIR, 'raw-worker.js')], { cwd: ROOT, env });
    case 'ts-js': {
      // Built by ensureJsBuild() (index.ts) before the first run of this row.
      const prof = spec.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${spec.profileDir}`] : [];
      const args = ['worker', '-A', join(JS_DIR, 'bench-app.js'), '-c', '1000', '-Q', spec.queue, '-l', 'warning', '-n', nodeName(system)];
      return startProc(node, [...prof, join(BENCH_DIR, 'js-worker.mjs'), ...args], { cwd: ROOT, env });
    }
    case 'bullmq':
      return startProc(node, ['--import', 'tsx', join(BENCH_DIR, 'bullmq-worker.ts')], { cwd: ROOT, env });
    case 'hop-async':
    case 'hop-threads': {
      // --cpu-prof profiles each worker thread too (one file per thread).
      const prof = spec.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${spec.profileDir}`] : [];
      return startProc(node, [...prof, '--import', 'tsx', join(BENCH_DIR, 'hop-worker.ts')], { cwd: ROOT, env: { ...env, POOL: system === 'hop-threads' ? 'threads' : 'async' } });
    }
    case 'ts':
    case 'ts-events':
    case 'ts-redis':
    case 'ts-async2':
    case 'ts-threads':
    case 'ts-quorum':
    case 'ts-x2':
    case 'ts-quorum-x2':
    case 'ts-late': {
      const prof = spec.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${spec.profileDir}`] : [];
      // -E: task-received/started/succeeded per task, published to celeryev (nobody bound: RabbitMQ drops them).
      const events = system === 'ts-events' ? ['-E'] : [];
      const pool = system === 'ts-async2' || system === 'ts-threads' ? ['-P', system === 'ts-threads' ? 'threads' : 'async', '-c', '2'] : ['-c', '1000'];
      const args = ['worker', '-A', 'scripts/bench/bench-app.ts', ...pool, '-Q', spec.queue, '-l', 'warning', '-n', nodeName(system), ...events];
      const late = system === 'ts-late' ? { BENCH_ACKS_LATE: '1' } : {};
      return startProc(node, [...prof, join(ROOT, 'bin', 'ts-celery.js'), ...args], { cwd: ROOT, env: { ...env, ...late } });
    }
    case 'py-eventlet':
    case 'py-prefork':
    case 'py-prefork-redis': {
      const pool = system === 'py-eventlet' ? ['-P', 'eventlet', '-c', '1000'] : ['-P', 'prefork', '-c', '2'];
      const args = ['-m', 'celery', '-A', 'pybench', 'worker', '-l', 'warning', ...pool, '-Q', spec.queue, '-n', nodeName(system),
        '--without-mingle', '--without-gossip', '--without-heartbeat'];
      return startProc(PYTHON, args, { cwd: BENCH_DIR, env: pythonEnv(spec) });
    }
  }
}
