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
import type { ReconnectInfo } from '../broker/amqp/amqp-broker.js';
import { CeleryError } from '../errors.js';
import { getLogger, setLogLevel, type LogLevel } from '../support/log.js';
import { urlScheme } from '../support/url.js';
import { Worker } from '../worker/worker.js';
import { banner } from './banner.js';
import { AppLoadError, loadApp } from './load-app.js';
import { watchParent } from './parent-watch.js';

const log = getLogger('MainProcess');

export interface WorkerArgs {
  app: string;
  loglevel: LogLevel;
  concurrency?: number | undefined;
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
  if (Object.keys(overrides).length) app.configFromObject(overrides);
  if (urlScheme(app.conf.broker_url) === 'memory') {
    fail(
      'broker_url is memory:// (the default when none is configured), which lives inside one process: ' +
        'a separate worker cannot reach it. Set CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// ' +
        '(or broker_url in your config, or -b).',
    );
  }
}

function logBrokerEvents(worker: Worker): void {
  const broker = worker.app.broker;
  broker.on('reconnect-scheduled', (info: ReconnectInfo) => {
    const of = info.maxRetries === null ? '' : `/${info.maxRetries}`;
    // Celery's wording; with several broker URLs the next node is tried at once.
    const next = info.failover ? 'Will retry using next failover.' : `Trying again in ${(info.delayMs / 1000).toFixed(2)} seconds... (${info.attempt}${of})`;
    log.error(`consumer: Cannot connect to ${info.url}: ${info.error.message}\n${next}`);
  });
  broker.on('disconnected', (err: Error) => log.warning(`consumer: Connection to broker lost. Trying to re-establish the connection... (${err.message})`));
  broker.on('resumed', (url: string) => log.info(`consumer: Connected to ${url} again; consuming resumed.`));
  broker.on('connected', (url: string) => log.info(`Connected to ${url}`));
  broker.on('blocked', (reason: string) => log.warning(`RabbitMQ blocked this connection: ${reason}`));
}

/** Runs the worker until a signal ends it. */
export async function runWorker(args: WorkerArgs): Promise<void> {
  setLogLevel(args.loglevel);
  let app: Celery;
  try {
    ({ app } = await loadApp(args.app));
    await app.ready();
  } catch (err) {
    if (err instanceof AppLoadError || err instanceof CeleryError) fail(err.message);
    throw err;
  }
  configure(app, args);
  const worker = new Worker(app, {
    hostname: expandNodeName(args.hostname ?? 'celery@%h'),
    concurrency: args.concurrency,
    queues: args.queues,
    prefetchMultiplier: args.prefetchMultiplier,
    ...(args.taskEvents !== undefined ? { taskEvents: args.taskEvents } : {}),
    ...(args.statedb !== undefined ? { statedb: args.statedb } : {}),
    ...(args.heartbeatInterval !== undefined ? { heartbeatInterval: args.heartbeatInterval } : {}),
    ...(args.metricsPort !== undefined ? { metricsPort: args.metricsPort, metricsHost: args.metricsHost ?? '0.0.0.0' } : {}),
  });

  let signals = 0;
  let exitCode = 0;
  let shuttingDown = false;
  const warmShutdown = (): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    worker.stop().then(() => app.close()).then(
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
  logBrokerEvents(worker);
  process.stdout.write(`${banner(worker)}\n`);
  try {
    await worker.start();
  } catch (err) {
    if (shuttingDown) return; // shutting down while still connecting
    fail(`worker could not start: ${(err as Error).message}`);
  }
}
