/**
 * `ts-celery worker -A <app> [-l level] [-c N] [-Q q1,q2] [-n name@host] [--prefetch-multiplier N]`
 *
 * Loads the app, prints the banner, starts the worker, and turns signals into
 * Celery's shutdowns: the first SIGTERM/SIGINT is a warm shutdown (stop
 * consuming, finish running tasks, exit 0), a second one is a cold shutdown
 * (exit at once; RabbitMQ redelivers what was unacked). The launching
 * process exiting (npx, npm run) counts as the first SIGTERM.
 */
import { hostname } from 'node:os';
import type { Celery } from '../app/celery.js';
import type { PoolName } from '../app/config.js';
import { CeleryError } from '../errors.js';
import { getLogger, setLogLevel, type LogLevel } from '../support/log.js';
import { urlScheme } from '../support/url.js';
import { logBrokerEvents } from '../worker/broker-log.js';
import { Worker } from '../worker/worker.js';
import { Beat } from '../beat/beat.js';
import { banner } from './banner.js';
import { AppLoadError, loadApp } from './load-app.js';
import { watchParent } from './parent-watch.js';
import { tuneWorkerHeap } from '../worker/heap.js';

const log = getLogger('MainProcess');

export interface WorkerArgs {
  app: string;
  loglevel: LogLevel;
  concurrency?: number | undefined;
  /** `-P`: async or threads (default worker_pool). */
  pool?: PoolName | undefined;
  maxTasksPerChild?: number | undefined;
  maxMemoryPerChild?: number | undefined;
  queues?: string[] | undefined;
  hostname?: string | undefined;
  prefetchMultiplier?: number | undefined;
  broker?: string | undefined;
  resultBackend?: string | undefined;
  /** Shut down warm when the launching parent process exits (default true; `--no-exit-with-parent`). */
  exitWithParent?: boolean | undefined;
  /** `-E` */
  taskEvents?: boolean | undefined;
  /** `-S` */
  statedb?: string | undefined;
  /** Seconds between heartbeats; null = `--without-heartbeat`. */
  heartbeatInterval?: number | null | undefined;
  metricsPort?: number | undefined;
  metricsHost?: string | undefined;
  /** `-B`: run beat in this process too. */
  beat?: boolean | undefined;
  /** `-s`: beat's schedule file. */
  schedule?: string | undefined;
}

/** Expands Celery's node-name variables: %h host, %n name part, %d domain. */
export function expandNodeName(pattern: string, host = hostname()): string {
  const [name = host, ...domain] = host.split('.');
  return pattern.replace(/%h/g, host).replace(/%n/g, name).replace(/%d/g, domain.join('.'));
}

/** One line on stderr and exit code 1: for errors the user must fix before a worker can run. */
function fail(message: string): never {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(1);
}

function configure(app: Celery, args: WorkerArgs): void {
  const overrides: Record<string, unknown> = {};
  if (args.broker) overrides.broker_url = args.broker;
  if (args.resultBackend) overrides.result_backend = args.resultBackend;
  if (args.pool) overrides.worker_pool = args.pool;
  if (args.maxTasksPerChild) overrides.worker_max_tasks_per_child = args.maxTasksPerChild;
  if (args.maxMemoryPerChild) overrides.worker_max_memory_per_child = args.maxMemoryPerChild;
  if (Object.keys(overrides).length) app.configFromObject(overrides);
  if (urlScheme(app.conf.broker_url) === 'memory') {
    fail(
      'broker_url is memory:// (the default when none is configured), which lives inside one process: ' +
        'a separate worker cannot reach it. Set CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// ' +
        '(or broker_url in your config, or -b).',
    );
  }
}

/** Runs the worker until a signal ends it. */
export async function runWorker(args: WorkerArgs): Promise<void> {
  setLogLevel(args.loglevel);
  let app: Celery;
  let appModule: string;
  try {
    ({ app, file: appModule } = await loadApp(args.app));
    await app.ready();
  } catch (err) {
    if (err instanceof AppLoadError || err instanceof CeleryError) fail(err.message);
    throw err;
  }
  configure(app, args);
  tuneWorkerHeap(app.conf.worker_heap_growing_percent);
  let worker: Worker;
  try {
    worker = new Worker(app, {
      hostname: expandNodeName(args.hostname ?? 'celery@%h'),
      concurrency: args.concurrency,
      queues: args.queues,
      prefetchMultiplier: args.prefetchMultiplier,
      appModule,
      ...(args.taskEvents !== undefined ? { taskEvents: args.taskEvents } : {}),
      ...(args.statedb !== undefined ? { statedb: args.statedb } : {}),
      ...(args.heartbeatInterval !== undefined ? { heartbeatInterval: args.heartbeatInterval } : {}),
      ...(args.metricsPort !== undefined ? { metricsPort: args.metricsPort, metricsHost: args.metricsHost ?? '0.0.0.0' } : {}),
    });
  } catch (err) {
    if (err instanceof CeleryError) fail(err.message);
    throw err;
  }

  let beat: Beat | null = null;
  if (args.beat) {
    try {
      beat = new Beat(app, { scheduleFilename: args.schedule, loggerName: 'Beat' });
    } catch (err) {
      fail((err as Error).message);
    }
  }

  let signals = 0;
  let exitCode = 0;
  let shuttingDown = false;
  const warmShutdown = (): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    // Beat first: no new runs are sent while the worker drains.
    Promise.resolve(beat?.stop()).then(() => worker.stop()).then(() => app.close()).then(
      () => process.exit(exitCode),
      (err: unknown) => {
        log.error(`worker: error during shutdown: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  // The worker logged why and is stopping by itself; exit non-zero so a supervisor restarts it.
  worker.on('fatal', () => {
    exitCode = 1;
    warmShutdown();
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      log.warning(`worker: Warm shutdown (MainProcess) on ${signal}`);
      warmShutdown();
    } else {
      log.warning(`worker: Cold shutdown (MainProcess) on ${signal}`);
      worker.abortRunning();
      process.exit(1);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A remote `shutdown` (celery control shutdown, Flower) is a warm shutdown, exit code 0.
  worker.on('shutdown-requested', () => {
    signals++;
    log.warning('worker: Warm shutdown (MainProcess) on a remote shutdown command');
    warmShutdown();
  });
  if (args.exitWithParent !== false) {
    // npx/npm exit on SIGTERM without passing it on: their exit is this worker's SIGTERM.
    watchParent((pid) => {
      signals++;
      log.warning(`worker: the launching process (pid ${pid}) exited: Warm shutdown (MainProcess)`);
      warmShutdown();
    });
  }
  // A task's stray promise must not take the worker (and every other running task) down.
  process.on('unhandledRejection', (reason) => log.error(`Unhandled promise rejection (a promise nobody awaited, e.g. in task code): ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`));

  try {
    await app.loadTasks();
  } catch (err) {
    fail((err as Error).message);
  }
  logBrokerEvents(worker.app.broker);
  process.stdout.write(`${banner(worker)}\n`);
  try {
    await worker.start();
  } catch (err) {
    if (shuttingDown) return; // shutting down while still connecting
    fail(`worker could not start: ${(err as Error).message}`);
  }
  if (beat && !shuttingDown) beat.start();
}
